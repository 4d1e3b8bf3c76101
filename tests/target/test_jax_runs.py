"""jax targets: the run draws recurring row lengths (compiled once each), never padded;
rows run in blocks, one program both ways; and only jax targets are run this way."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from conftest import require

import softmax_verify.strategies as sv_st
from softmax_verify import verify
from softmax_verify.bundled.reference import softmax
from softmax_verify.cli import main
from softmax_verify.core.options import Options
from softmax_verify.run.plan import RunPlan
from softmax_verify.target.autodiff import adapt, compiled_per_shape
from softmax_verify.target.frameworks import adapter
from softmax_verify.target.load import TargetSpec
from softmax_verify.tolerances import reference_forward_bound

PALETTE = {*sv_st.RECURRING_SHORT_COLS, *sv_st.BOUNDARY_COLS, *sv_st.RECURRING_ARBITRARY_COLS}


def _jax() -> Any:
    require("jax")
    import jax_targets

    return jax_targets


def _numpy_softmax(x: Any) -> Any:
    return softmax(x)


# --------------------------------------------------------------------------- the plan


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (TargetSpec("jax"), True),
        (TargetSpec("tests/jax_targets.py:jitted", options=Options(autodiff="jax")), True),
        (TargetSpec("reference"), False),
        (TargetSpec(None), False),
        (TargetSpec("torch"), False),
        (TargetSpec("scipy"), False),
        (
            TargetSpec("tests/torch_targets.py:GoodSoftmax", options=Options(autodiff="torch")),
            False,
        ),
    ],
    ids=repr,
)
def test_the_command_line_knows_a_jax_target_from_its_words(
    spec: TargetSpec, expected: bool
) -> None:
    assert spec.compiled_per_shape is expected


def test_only_a_compiled_target_gets_recurring_lengths() -> None:
    plan = RunPlan.build(Options(dtypes=("float64",)))
    assert plan.for_target(False) is plan
    assert not plan.domain.recurring_cols
    jax_plan = plan.for_target(True)
    assert jax_plan.domain.recurring_cols
    assert sv_st.shapes_in(jax_plan.domain) is not None
    assert "palette" in jax_plan.domain.describe()
    assert "palette" not in plan.domain.describe()


def test_compiled_per_shape_recognises_jax_targets_only() -> None:
    jax_targets = _jax()
    forward, _ = adapter("jax")
    assert compiled_per_shape(forward)
    adapted = adapt(jax_targets.jitted, "jax")
    assert adapted is not None
    assert compiled_per_shape(adapted.forward)
    assert not compiled_per_shape(_numpy_softmax)
    assert not compiled_per_shape(np.exp)
    require("torch")
    assert not compiled_per_shape(adapter("torch")[0])


def test_verify_draws_palette_lengths_for_a_jax_target_and_says_so() -> None:
    jax = _jax().jax
    seen: set[int] = set()

    def spy(a: Any) -> Any:
        seen.add(a.shape[1])  # traced once per program: each length a program is built for
        return jax.nn.softmax(a, axis=1)

    report = verify(
        spy,
        dtypes=("float64",),
        invariants=["rows_sum_to_one", "backward_matches_reference"],
        max_examples=60,
        options=Options(autodiff="jax"),
    )
    assert report.passed, report.to_text()
    assert seen <= PALETTE, sorted(seen - PALETTE)
    assert len(seen) > 5
    assert "row lengths from a palette" in report.to_text()


def test_verify_of_numpy_code_draws_every_length() -> None:
    seen: set[int] = set()

    def forward(x: Any) -> Any:
        seen.add(x.shape[1])
        return softmax(x)

    report = verify(forward, dtypes=("float64",), invariants=["rows_sum_to_one"])
    assert report.passed
    assert seen - PALETTE  # lengths outside the palette reach numpy code
    assert "palette" not in report.to_text()


def test_the_command_line_says_a_jax_run_draws_from_the_palette(
    capsys: pytest.CaptureFixture[str],
) -> None:
    require("jax")
    words = ["check", "jax", "--invariant", "rows_sum_to_one", "--max-examples", "5"]
    assert main([*words, "--dtype", "float64"]) == 0
    assert "row lengths from a palette" in capsys.readouterr().out
    assert main(["check", "reference", *words[2:], "--dtype", "float64"]) == 0
    assert "palette" not in capsys.readouterr().out


# --------------------------------------------------------------------------- both directions


def test_a_remainder_bug_of_a_jax_kernel_is_caught_on_palette_lengths() -> None:
    """The D % 8 tail past a block is left out of the sum: caught, on a length as drawn."""
    report = verify(
        _jax().tail_left_out_of_the_sum,
        dtypes=("float64",),
        invariants=["rows_sum_to_one"],
        options=Options(autodiff="jax"),
    )
    (result,) = report.results
    assert result.status == "failed", result.message
    assert result.counterexample is not None
    d = result.counterexample["x"].shape[1]
    assert d > 8, d
    assert d % 8, d


def test_a_correct_jax_kernel_passes_on_palette_lengths() -> None:
    report = verify(
        _jax().good_vjp, dtypes=("float32",), max_examples=40, options=Options(autodiff="jax")
    )
    assert report.passed, report.to_text()


# --------------------------------------------------------------------------- blocks


def test_long_rows_run_in_blocks_of_fewer_rows() -> None:
    """Three rows of 4097: one row per call (a block holds at most BLOCK_ENTRIES), every
    row's result right, no column padded."""
    jax = _jax().jax
    from softmax_verify.target.jax_buckets import BLOCK_ENTRIES, block_rows

    shapes: list[tuple[int, ...]] = []

    def spy(a: Any) -> Any:
        shapes.append(a.shape)
        return jax.nn.softmax(a, axis=1)

    ad = adapt(spy, "jax")
    assert ad is not None
    x = np.linspace(-30.0, 30.0, 3 * 4097).reshape(3, 4097)
    y, _ = ad.forward(x)
    assert set(shapes) == {(block_rows(4097), 4097)}
    assert block_rows(4097) * 4097 <= max(BLOCK_ENTRIES, 4097)
    assert block_rows(13) == 32
    assert block_rows(8192) == 1
    exact = softmax(x)
    assert (np.abs(y - exact) <= reference_forward_bound(x, exact, np.float64)).all()


def test_an_output_of_another_dtype_is_reported_not_an_error() -> None:
    """Forward and VJP share a program only when the output is shaped as the input: a
    float32 output of a float64 input runs as a forward alone, and its checks judge it
    (float32 values miss float64's bound too), rather than erroring on the program."""
    report = verify(
        _jax().float32_out,
        dtypes=("float64",),
        invariants=["dtype_preserved", "rows_sum_to_one"],
        max_examples=10,
        options=Options(autodiff="jax"),
    )
    for result in report.results:
        assert result.status == "failed", result.message
