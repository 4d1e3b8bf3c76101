"""Targets written with torch/jax ops, their backward from the framework's autodiff."""

from __future__ import annotations

import functools
import types
from typing import Any

import numpy as np
import pytest
from conftest import require

from softmax_verify import verify
from softmax_verify.cli import main
from softmax_verify.core.options import Options
from softmax_verify.target.autodiff import AutodiffError, adapt, detect
from softmax_verify.target.load import TargetError, resolve

# Few examples: the invariants themselves are tested elsewhere; here the reading of the
# target and the verdict are, and each drawn shape costs a compilation.
QUICK_EXAMPLES = 10


def _torch() -> Any:
    require("torch")
    import torch_targets

    return torch_targets


def _jax() -> Any:
    require("jax")
    import jax_targets

    return jax_targets


@pytest.mark.parametrize("name", ["torch_softmax", "GoodSoftmax", "SoftmaxLayer"])
def test_correct_torch_targets_pass(name: str) -> None:
    target = getattr(_torch(), name)
    report = verify(
        target,
        dtypes=("float32",),
        max_examples=QUICK_EXAMPLES,
        seed=5,
        options=Options(autodiff="torch"),
    )
    assert report.passed, report.to_text()
    assert "torch.autograd.grad" in report.interpretation


def test_torch_module_instance_passes_and_is_detected() -> None:
    layer = _torch().SoftmaxLayer()
    assert detect(layer) == "torch"
    report = verify(layer, max_examples=QUICK_EXAMPLES, seed=5)
    assert report.passed, report.to_text()
    assert report.interpretation.startswith("nn.Module instance of SoftmaxLayer")


def test_wrong_custom_torch_backward_is_caught() -> None:
    """autograd of plain torch.softmax passes ones_upstream_gives_zero; this backward does not."""
    targets = _torch()
    assert detect(targets.DiagonalSoftmax) == "torch"  # no flag needed
    report = verify(targets.DiagonalSoftmax, max_examples=QUICK_EXAMPLES, seed=5)
    failed = {r.invariant for r in report.failures}
    assert {"ones_upstream_gives_zero", "gradient_rows_sum_to_zero"} <= failed
    assert report.interpretation == (
        "torch.autograd.Function subclass DiagonalSoftmax, called via .apply; "
        "backward by torch.autograd.grad on cpu"
    )


def test_torch_log_softmax_with_kind() -> None:
    report = verify(
        _torch().torch_log_softmax,
        kind="log_softmax",
        max_examples=QUICK_EXAMPLES,
        seed=5,
        options=Options(autodiff="torch"),
    )
    assert report.passed, report.to_text()
    assert report.interpretation.startswith("log_softmax; torch function")


def test_cuda_without_a_gpu_is_a_clear_usage_error() -> None:
    targets = _torch()
    with pytest.raises(AutodiffError, match=r"torch\.cuda\.is_available\(\) is False"):
        adapt(targets.GoodSoftmax, "torch", device="cuda")
    status = main(["check", "tests/torch_targets.py:GoodSoftmax", "--device", "cuda"])
    assert status == 2


def test_module_class_needing_arguments_is_a_usage_error() -> None:
    _torch()
    with pytest.raises(TargetError, match="cannot be constructed without arguments"):
        resolve("tests/torch_targets.py:NeedsArguments", autodiff="torch")


def test_correct_custom_vjp_passes_every_invariant() -> None:
    report = verify(_jax().good_vjp, dtypes=("float32",), max_examples=QUICK_EXAMPLES, seed=5)
    assert report.passed, report.to_text()
    assert "jax.vjp" in report.interpretation


@pytest.mark.parametrize("name", ["good_jvp", "jitted"])
def test_correct_jax_targets_pass(name: str) -> None:
    # Each drawn column count compiles a program: the backward checks that matter only.
    target = getattr(_jax(), name)
    report = verify(
        target,
        invariants=["ones_upstream_gives_zero", "backward_matches_reference"],
        max_examples=QUICK_EXAMPLES,
        seed=5,
        options=Options(autodiff="jax"),
    )
    assert report.passed, report.to_text()
    assert "jax.vjp" in report.interpretation


def test_wrong_custom_vjp_is_caught_and_detected() -> None:
    targets = _jax()
    assert detect(targets.missing_term_vjp) == "jax"
    report = verify(
        targets.missing_term_vjp,
        invariants=["ones_upstream_gives_zero", "backward_matches_reference"],
        dtypes=("float64",),
        max_examples=QUICK_EXAMPLES,
        seed=5,
    )
    assert [r.status for r in report.results] == ["failed", "failed"]
    assert "with jax.custom_vjp" in report.interpretation


def test_jax_columns_reach_the_code_unpadded() -> None:
    """Rows are bucketed for compilation; the softmax axis never is, so a tail bug shows."""
    targets = _jax()
    report = verify(
        targets.tail_bug, invariants=["rows_sum_to_one"], seed=5, options=Options(autodiff="jax")
    )
    assert not report.passed
    x = report.results[0].counterexample
    assert x is not None
    assert x["x"].shape[1] % 8 != 0

    seen: list[tuple[int, ...]] = []

    def spy(a: Any) -> Any:
        seen.append(a.shape)  # at trace time: the shape compiled for
        return targets.jitted(a)

    ad = adapt(spy, "jax")
    assert ad is not None
    y, _ = ad.forward(np.zeros((3, 13)))
    assert y.shape == (3, 13)
    assert set(seen) == {(32, 13)}  # traced for the forward and for its VJP


def test_autodiff_cli_reads_and_reports_the_target(capsys: pytest.CaptureFixture[str]) -> None:
    _torch()
    status = main(
        [
            "check",
            "tests/torch_targets.py:torch_softmax",
            "--autodiff",
            "torch",
            "--invariant",
            "jacobian_symmetry",
            "--max-examples",
            "10",
        ]
    )
    out = capsys.readouterr().out
    assert status == 0, out
    assert "read as: torch function torch_softmax" in out


def test_autodiff_needs_a_target_of_the_users() -> None:
    with pytest.raises(TargetError, match="need a target of yours"):
        resolve("torch", autodiff="torch")
    with pytest.raises(ValueError, match="autodiff must be one of torch, jax, tensorflow"):
        adapt(np.exp, "tinygrad")


def test_jax_batches_run_in_blocks_of_rows_with_columns_as_drawn() -> None:
    """A stacked batch of 70 rows runs as three 32-row blocks, every row's result right."""
    jax = require("jax")
    from softmax_verify.bundled.reference import softmax, softmax_backward
    from softmax_verify.target.jax_buckets import BLOCK_ROWS
    from softmax_verify.tolerances import reference_backward_bound, reference_forward_bound

    seen: list[tuple[int, ...]] = []

    def spy(a: Any) -> Any:
        seen.append(a.shape)
        return jax.nn.softmax(a, axis=1)

    ad = adapt(spy, "jax")
    assert ad is not None
    assert ad.backward is not None
    x = np.linspace(-20.0, 20.0, 70 * 13).reshape(70, 13)
    g = np.cos(np.arange(70 * 13, dtype=np.float64)).reshape(70, 13)
    y, cache = ad.forward(x)
    dx = ad.backward(g, cache)
    assert set(seen) == {(BLOCK_ROWS, 13)}
    exact = softmax(x)
    assert (np.abs(y - exact) <= reference_forward_bound(x, exact, np.float64)).all()
    tol = reference_backward_bound(x, exact, g, np.float64)
    assert (np.abs(dx - softmax_backward(g, exact)) <= tol).all()


def test_jax_forward_is_checked_when_jax_cannot_differentiate_it() -> None:
    """Forward and VJP share one program; a target reverse mode cannot handle (a while_loop)
    still has its forward run and checked, and the backward reports jax's own error."""
    jax = require("jax")

    def looped(a: Any) -> Any:
        def body(state: tuple[Any, Any]) -> tuple[Any, Any]:
            i, z = state
            return i + 1, z * 1.0

        _, z = jax.lax.while_loop(lambda s: s[0] < 1, body, (0, a))
        return jax.nn.softmax(z, axis=1)

    report = verify(
        looped, dtypes=("float64",), max_examples=5, seed=1, options=Options(autodiff="jax")
    )
    by_id = {r.invariant: r for r in report.results}
    assert by_id["rows_sum_to_one"].status == "passed"
    assert by_id["central_differences"].status == "error"
    assert "while_loop" in by_id["central_differences"].message


def test_jax_disk_cache_is_set_only_where_asked() -> None:
    """verify() runs in the user's process: jax's global config is left alone there."""
    jax = require("jax")
    import softmax_verify.target.jax_buckets as buckets

    assert not buckets._on_disk  # only the command line's child calls persistent_cache()
    before = jax.config.jax_compilation_cache_dir
    assert adapt(targets_jitted(), "jax") is not None
    assert jax.config.jax_compilation_cache_dir == before


def targets_jitted() -> Any:
    return _jax().jitted


def test_one_module_per_library_is_behind_each_autodiff_name() -> None:
    from softmax_verify.core.options import AUTODIFF
    from softmax_verify.target.autodiff import LIBRARIES

    assert tuple(LIBRARIES) == AUTODIFF
    for name, library in LIBRARIES.items():
        assert library.name == name
        assert library.adapt.__module__ == f"softmax_verify.target.autodiff._{name}"
        assert library.kind(object()) is None  # nothing of theirs, and nothing imported


def test_a_librarys_objects_are_recognised_by_type_or_module() -> None:
    """The module rule, on stand-ins: functions and instances whose module is a library's."""

    def stand_in(module: str) -> Any:
        def softmax(x: Any) -> Any:
            return x

        softmax.__module__ = module
        return softmax

    assert detect(stand_in("tensorflow.python.ops.nn_ops")) == "tensorflow"
    assert detect(stand_in("mygrad.nnet.activations.softmax")) == "mygrad"
    assert detect(stand_in("keras.src.ops.nn")) == "keras"
    assert detect(stand_in("jax._src.nn.functions")) == "jax"
    assert detect(stand_in("autograd.tracer")) == "autograd"
    assert detect(stand_in("numpy")) is None
    assert detect(stand_in("thinc.backends.ops")) is None  # numpy in, numpy out
    assert detect(functools.partial(stand_in("mygrad.nnet"), axis=-1)) == "mygrad"


def test_the_libraries_a_users_function_calls_are_read_from_its_code() -> None:
    import styles

    from softmax_verify.target.autodiff import uses

    assert uses(styles.softmax_rows) == ()  # numpy alone
    assert uses(_calls_torch_through_a_helper) == ("torch",)
    assert uses(functools.partial) == ()  # no code to read


#: A stand-in for ``import torch``: only the module's name is read, never the module called.
_TORCH = types.ModuleType("torch")


def _torch_helper(x: Any) -> Any:
    return _TORCH.softmax(_TORCH.from_numpy(x), dim=1)


def _calls_torch_through_a_helper(x: Any) -> Any:
    return _torch_helper(x)


def test_device_applies_to_torch_alone() -> None:
    with pytest.raises(AutodiffError, match="applies to torch targets only, not mygrad"):
        adapt(np.exp, "mygrad", device="cuda")


def test_backward_cannot_be_given_for_a_recognised_library_function() -> None:
    require("jax")
    from softmax_verify.target.load import TargetSpec, load_implementation

    spec = TargetSpec("jax.nn:softmax", backward="tests/styles.py:backprop_softmax")
    with pytest.raises(TargetError, match=r"autodiff target \(jax function softmax; "):
        load_implementation(spec)
