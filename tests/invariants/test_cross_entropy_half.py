"""Hand-written float16 cross-entropy under ``accumulate="input"`` (its sums accumulate in
float16): a correct half-in-half loss passes every invariant, an unshifted one fails, and the
central difference's step stays inside float16's range where the bound is vacuous."""

from __future__ import annotations

from typing import Any

import ce_half_impls as half
import numpy as np
from conftest import require

from softmax_verify import Options, verify
from softmax_verify.core.errors import InvariantViolation
from softmax_verify.core.result import Result
from softmax_verify.invariants import get_invariant
from softmax_verify.target.conventions import loss_implementation_from
from softmax_verify.tolerances import VACUOUS, cross_entropy_difference_step

SKIPPED = {"onehot_index_agree", "linearity_in_upstream"}  # index labels only; no upstream


def _run(target: object) -> tuple[Result, ...]:
    options = Options(kind="cross_entropy", dtypes=("float16",), accumulate="input")
    return verify(target, options=options).results


def test_a_correct_half_in_half_loss_passes() -> None:
    results = _run(half.half_loss)
    assert {r.invariant for r in results if r.status == "skipped"} == SKIPPED
    failed = [(r.invariant, r.message) for r in results if r.status not in ("passed", "skipped")]
    assert failed == []
    assert all(r.examples > 1 for r in results if r.status == "passed")


def test_an_unshifted_half_loss_fails() -> None:
    failed = {r.invariant for r in _run(half.half_loss_unshifted) if r.status == "failed"}
    assert "finite_for_finite_input" in failed


def test_the_step_stays_in_float16s_range_under_a_vacuous_bound() -> None:
    assert cross_entropy_difference_step(VACUOUS, 1.0, np.float16) == 1.0
    # The counterexample before the ceiling: one (1, 1023) row of zeros, label 0.
    options = Options(kind="cross_entropy", accumulate="input")
    impl, _ = loss_implementation_from(half.half_loss, None, options.read, options.loss)
    case = {
        "x": np.zeros((1, 1023), np.float16),
        "labels": np.array([0]),
        "g": np.asarray(1.0, np.float16),
    }
    get_invariant("central_differences", "cross_entropy").check(impl, case, "input")


def test_a_bfloat16_half_in_half_loss_passes_under_input() -> None:
    require("ml_dtypes")
    options = Options(kind="cross_entropy", dtypes=("bfloat16",), accumulate="input")
    report = verify(half.half_loss, options=options)
    assert report.passed, report.to_text()


def test_a_half_in_half_loss_under_the_default_model_is_told_to_use_input() -> None:
    """Checked by the default model (float32 accumulation, rounded once), the loss summed in
    bfloat16 (8 significant bits: on long rows its sums are off by far more than one
    rounding) fails; the report names the model that accepts each counterexample and its
    option, as softmax's does, and claims no region for those failures. (At float16 numpy's
    pairwise sums keep the same loss within the default model's bound.)"""
    require("ml_dtypes")
    report = verify(half.half_loss, options=Options(kind="cross_entropy", dtypes=("bfloat16",)))
    failed = {r.invariant for r in report.results if r.status == "failed"}
    assert failed, report.to_text()
    models = [d for d in report.diagnosis if d.id == "accumulation_model"]
    assert len(models) == 1, report.to_text()
    assert set(models[0].explains) == failed
    assert "--accumulate input" in models[0].fix
    assert [d.id for d in report.diagnosis] == ["accumulation_model"]


def test_an_unshifted_half_loss_is_not_explained_by_a_model() -> None:
    """Its overflow is no rounding error: no model accepts the non-finite loss."""
    require("ml_dtypes")
    options = Options(kind="cross_entropy", dtypes=("bfloat16", "float16"))
    report = verify(half.half_loss_unshifted, options=options)
    failed = {(r.invariant, r.dtype) for r in report.results if r.status == "failed"}
    assert ("finite_for_finite_input", "float16") in failed, report.to_text()
    explained = {inv for d in report.diagnosis for inv in d.explains}
    assert "finite_for_finite_input" not in explained, report.to_text()


def _sum_cases() -> list[dict[str, Any]]:
    rng = np.random.default_rng(0)
    cases = []
    for _ in range(60):
        n, c = int(rng.integers(2, 40)), int(rng.integers(2, 30))
        x = rng.normal(0.0, 3.0, (n, c)).astype(np.float16)
        cases.append({"x": x, "labels": np.zeros(n, np.int64), "g": np.asarray(1.0, np.float16)})
    return cases


def test_a_sum_gradient_taken_as_the_means_times_n_is_caught_in_float16() -> None:
    """Both directions on the same 60 cases under ``accumulate="input"``: the sum's dx
    formed directly passes every one; formed as the mean's dx times N it fails, its small
    entries lost to float16 subnormals before the product scales them up."""
    options = Options(kind="cross_entropy", reduction="sum", accumulate="input")
    check = get_invariant("backward_matches_reference", "cross_entropy").check
    failures = {}
    for target in (half.half_sum_loss, half.half_sum_from_mean):
        impl, _ = loss_implementation_from(target, None, options.read, options.loss)
        failures[target.__name__] = 0
        for case in _sum_cases():
            try:
                check(impl, dict(case), "input")
            except InvariantViolation:
                failures[target.__name__] += 1
    assert failures["half_sum_loss"] == 0
    assert failures["half_sum_from_mean"] >= 10, failures
