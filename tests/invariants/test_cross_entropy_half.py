"""Hand-written float16 cross-entropy under ``accumulate="input"`` (its sums accumulate in
float16): a correct half-in-half loss passes every invariant, an unshifted one fails, and the
central difference's step stays inside float16's range where the bound is vacuous."""

from __future__ import annotations

import ce_half_impls as half
import numpy as np

from softmax_verify import Options, verify
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
