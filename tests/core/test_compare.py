"""The error-to-tolerance ratio every comparison ranks entries by (one floor for all)."""

from __future__ import annotations

import numpy as np

from softmax_verify.core.compare import error_ratio, find_mismatch
from softmax_verify.gradcheck._tally import _Tally


def test_error_ratio_floors_zero_tolerances_and_ranks_nan_errors_first() -> None:
    tiny = float(np.finfo(np.float64).tiny)
    err = np.array([1.0, 0.0, 3e-300, np.nan, 2.0])
    tol = np.array([4.0, 0.0, 0.0, 1.0, -1.0])
    ratio = error_ratio(err, tol)
    assert ratio.tolist() == [0.25, 0.0, 3e-300 / tiny, np.inf, 2.0 / tiny]


def test_find_mismatch_and_the_gradient_tally_agree_on_the_worst_entry() -> None:
    # A zero tolerance with a tiny error outranks a large error over a large tolerance,
    # in the invariants' comparison and in the gradient checks' tally alike.
    expected = np.zeros((2, 3))
    actual = np.array([[0.0, 1e-290, 0.0], [5.0, 0.0, 0.0]])
    tol = np.array([[1.0, 0.0, 1.0], [1.0, 1.0, 1.0]])
    found = find_mismatch(actual, expected, tol, what="t")
    assert found is not None
    assert found.worst_index == (0, 1)
    tally = _Tally("t", (2, 3))
    tally.add(expected, actual, tol)
    result = tally.result(1, 1)
    assert result.mismatch is not None
    assert result.mismatch.worst_index == (0, 1)
