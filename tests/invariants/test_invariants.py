"""Every invariant passes on the reference and fails on at least one known-bad implementation.

The reference runs through the pytest contract (one Hypothesis property per
invariant, under the active profile); each known-bad implementation runs through
``run_invariant`` under the derandomized ci profile and must be rejected with a
counterexample, for every invariant it is listed as failing.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest
from bad_impls import BAD, Bad, notebook_backward, notebook_forward

from softmax_verify.bundled.reference import softmax, softmax_backward
from softmax_verify.bundled.staged import staged_backward, staged_forward
from softmax_verify.invariants import INVARIANT_IDS, INVARIANTS, get_invariant
from softmax_verify.run.runner import run_invariant
from softmax_verify.target.local import LocalImplementation
from softmax_verify.testing import SoftmaxContract


class TestReferenceContract(SoftmaxContract, exclude=("stage_gradients",)):
    """The bundled reference satisfies every invariant at float64 and float32.

    Its backward returns dx alone, so stage localization has nothing to look at
    (test_stage_gradients_skips_without_named_stages below shows it reports that).
    """

    forward = staticmethod(softmax)
    backward = staticmethod(softmax_backward)


class TestStagedContract(SoftmaxContract):
    """The corrected staged graph too, including stage_gradients on its own stages."""

    forward = staticmethod(staged_forward)
    backward = staticmethod(staged_backward)


EXPECTED_FAILURES = [
    pytest.param(bad, inv, dtype, id=f"{bad.name}-{inv}-{dtype}")
    for bad in BAD
    for inv in bad.fails
    for dtype in bad.dtypes
]


@pytest.mark.parametrize(("bad", "invariant", "dtype"), EXPECTED_FAILURES)
def test_bad_implementation_is_rejected(bad: Bad, invariant: str, dtype: str) -> None:
    impl = LocalImplementation(bad.forward, bad.backward, timeout=10.0)
    result = run_invariant(invariant, impl, dtype, profile="ci")
    assert result.status == "failed", result
    assert result.counterexample is not None
    assert "x" in result.counterexample
    assert result.message


def test_every_invariant_is_failed_by_some_bad_implementation() -> None:
    covered = {inv for bad in BAD for inv in bad.fails}
    assert covered == set(INVARIANT_IDS)


def test_stage_gradients_names_the_notebook_bug() -> None:
    impl = LocalImplementation(notebook_forward, notebook_backward)
    result = run_invariant("stage_gradients", impl, np.float64, profile="ci")
    assert result.status == "failed"
    assert result.first_wrong_stage == "dexps_1"
    assert "broadcast(dsexps" in result.message


def test_stage_gradients_points_at_the_line_computing_the_wrong_stage() -> None:
    impl = LocalImplementation(notebook_forward, notebook_backward)
    result = run_invariant("stage_gradients", impl, np.float64, profile="ci")
    assert result.location is not None
    path, line, code = result.location.split(":", 2)
    assert path.endswith("bad_impls.py")
    assert inspect.getsourcelines(notebook_backward)[1] < int(line)
    assert code.strip().startswith('grad["dexps_1"] =')


def test_stage_source_is_found_for_names_and_subscripts() -> None:
    staged = LocalImplementation(staged_forward, staged_backward)
    assert staged.source_of("dexps_1") is not None
    assert "dexps_1 = np.broadcast_to" in (staged.source_of("dexps_1") or "")
    assert staged.source_of("no_such_stage") is None
    assert LocalImplementation(softmax).source_of("dx") is None  # no backward given


def test_counterexamples_shrink_to_small_inputs() -> None:
    impl = LocalImplementation(notebook_forward, notebook_backward)
    result = run_invariant("ones_upstream_gives_zero", impl, np.float64, profile="ci")
    assert result.counterexample is not None
    x = result.counterexample["x"]
    # The bug shows on any row of length >= 2 (y(1 - y) != 0), so shrinking must reach one.
    assert x.shape == (1, 2)


def test_invariant_registry() -> None:
    assert len(set(INVARIANT_IDS)) == len(INVARIANT_IDS)
    for inv in INVARIANTS:
        assert inv.doc, inv.id
        assert get_invariant(inv.id) is inv
    with pytest.raises(ValueError, match="invariant must be one of"):
        get_invariant("rows_sum_to_two")


def test_backward_invariants_skip_without_backward() -> None:
    impl = LocalImplementation(softmax)
    result = run_invariant("central_differences", impl, np.float64, profile="ci")
    assert result.status == "skipped"
    assert "no backward" in result.message


def test_stage_gradients_skips_without_named_stages() -> None:
    impl = LocalImplementation(softmax, softmax_backward)
    result = run_invariant("stage_gradients", impl, np.float64, profile="ci")
    assert result.status == "skipped"
    assert "cache" in result.message


def _overflowing_backward(dout: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Infinities of the upstream's sign: a u + b v of two of them is inf - inf."""
    with np.errstate(over="ignore"):
        dx: np.ndarray = dout * np.float64(1e308) * np.float64(1e308)
    return dx


def test_infinite_gradients_fail_linearity_without_a_warning_of_the_verifier() -> None:
    # pytest turns warnings into errors here: a RuntimeWarning from the check's own sum
    # would make this an error of the verifier instead of the implementation's failure.
    impl = LocalImplementation(softmax, _overflowing_backward)
    result = run_invariant("linearity_in_upstream", impl, np.float64, profile="ci")
    assert result.status == "failed", result
