"""Cross-entropy written with torch or jax ops: a ``torch.autograd.Function`` and a
``jax.custom_vjp`` loss recognised without an option and judged through their hand-written
backward, losses of framework ops through ``--autodiff``, and the built-in peers
(``torch.nn.functional.cross_entropy``, optax). Each reading is said in ``read as``."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import cli, require

from softmax_verify import verify
from softmax_verify.core.options import AUTODIFF, Options
from softmax_verify.target.autodiff import AutodiffError
from softmax_verify.target.autodiff_loss import adapt_loss

# Few examples: the invariants are tested in tests/invariants/test_cross_entropy.py; here
# the reading and the verdict are.
QUICK = 10


def _torch() -> Any:
    require("torch")
    import ce_torch_targets

    return ce_torch_targets


def _jax() -> Any:
    require("jax")
    import ce_jax_targets

    return ce_jax_targets


def _verify(target: Any, dtype: str = "float64", **options: Any) -> Any:
    chosen = Options(kind="cross_entropy", max_examples=QUICK, dtypes=(dtype,), **options)
    return verify(target, options=chosen)


@pytest.mark.parametrize(
    ("name", "options", "read_as"),
    [
        ("CrossEntropyFunction", {}, "autograd.Function"),
        ("RowCrossEntropy", {"reduction": "none"}, "autograd.Function"),
        ("log_softmax_loss", {"autodiff": "torch"}, "torch.autograd.grad"),
    ],
)
def test_correct_torch_losses_pass(name: str, options: dict[str, Any], read_as: str) -> None:
    report = _verify(getattr(_torch(), name), "float32", **options)
    assert report.passed, report.to_text()
    assert read_as in report.interpretation, report.interpretation


def test_a_torch_function_without_the_division_by_n_fails() -> None:
    report = _verify(_torch().NotAveragedFunction)
    failed = {r.invariant for r in report.results if r.status == "failed"}
    assert "backward_matches_reference" in failed, report.to_text()
    assert "central_differences" in failed


def test_log_of_softmax_in_torch_fails_on_an_underflowing_label() -> None:
    report = _verify(_torch().log_of_softmax_loss, "float32", autodiff="torch")
    failed = {r.invariant for r in report.results if r.status == "failed"}
    assert "finite_for_finite_input" in failed, report.to_text()


def test_a_jax_custom_vjp_loss_is_recognised_and_judged() -> None:
    targets = _jax()
    report = _verify(targets.cross_entropy)
    assert report.passed, report.to_text()
    assert "custom_vjp" in report.interpretation, report.interpretation
    flipped = _verify(targets.flipped_cross_entropy)
    failed = {r.invariant for r in flipped.results if r.status == "failed"}
    assert "backward_matches_reference" in failed, flipped.to_text()


def test_a_jax_loss_through_autodiff_passes() -> None:
    report = _verify(_jax().log_softmax_loss, "float32", autodiff="jax")
    assert report.passed, report.to_text()
    assert "jax.vjp" in report.interpretation, report.interpretation


@pytest.mark.parametrize("library", [name for name in AUTODIFF if name not in ("torch", "jax")])
def test_a_loss_through_another_librarys_autodiff_is_refused_by_name(library: str) -> None:
    def loss(x: Any, labels: Any) -> Any:
        return x.sum()

    # The softmax kinds take every --autodiff library; a loss is read through torch or jax
    # only: the others are named, not read as jax.
    with pytest.raises(AutodiffError, match=f"torch or jax autodiff only; this one is {library}'s"):
        adapt_loss(loss, library)


CHECKED = (
    "--invariant",
    "matches_reference",
    "--invariant",
    "backward_matches_reference",
    "--invariant",
    "central_differences",
)


@pytest.mark.usefixtures("in_repo_root")
@pytest.mark.parametrize(("peer", "named"), [("torch", "cross_entropy"), ("jax", "optax")])
@pytest.mark.parametrize("dtypes", ["all", "all-half"])
def test_the_built_in_peers_pass(
    capsys: pytest.CaptureFixture[str], peer: str, named: str, dtypes: str
) -> None:
    require(peer)
    if dtypes == "all-half":
        require("ml_dtypes")  # bfloat16
    argv = ("check", peer, "--kind", "cross_entropy", "--max-examples", str(QUICK))
    code, out, err = cli(capsys, *argv, "--dtype", dtypes, *CHECKED)
    assert code == 0, out + err
    assert named in out.splitlines()[1]
    assert out.count("PASSED") == 6, out
