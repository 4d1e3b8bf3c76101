"""Entry-by-entry comparison with a per-entry tolerance, reported like numpy.testing.

A mismatch is reported with what ``assert_allclose`` reports (count of
mismatched entries, max absolute and relative error) plus what a tolerance
array makes meaningful: the worst entry by error-to-tolerance ratio, with its
index, both values and its own tolerance.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from softmax_verify.core.errors import InvariantViolation, Mismatch

__all__ = ["Mismatch", "assert_within", "error_ratio", "find_mismatch"]

#: The tolerance an error is divided by where its own is 0 (or not a number): the smallest
#: normal float64, so that any error over a zero tolerance ranks far above every error
#: over a positive one, and a zero error over it is 0.
_RATIO_FLOOR = float(np.finfo(np.float64).tiny)


def error_ratio(err: ArrayLike, tol: ArrayLike) -> NDArray[np.float64]:
    """``err / tol`` entry by entry (the error-to-tolerance ratio every report ranks by): a
    tolerance that is not positive counts as ``_RATIO_FLOOR``, and a NaN error as inf."""
    e = np.asarray(err, dtype=np.float64)
    t = np.asarray(tol, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        ratio = e / np.where(t > 0, t, _RATIO_FLOOR)
    out: NDArray[np.float64] = np.where(np.isnan(e), np.inf, ratio)
    return out


def find_mismatch(
    actual: ArrayLike, expected: ArrayLike, tolerance: ArrayLike, *, what: str
) -> Mismatch | None:
    """Return the mismatch of ``|actual - expected| <= tolerance``, entry by entry, or None.

    Entries equal as IEEE values (including matching infinities) and entries that
    are NaN on both sides agree; a NaN on one side only is always a mismatch.
    """
    act = np.asarray(actual, dtype=np.float64)
    exp = np.asarray(expected, dtype=np.float64)
    tol = np.broadcast_to(np.asarray(tolerance, dtype=np.float64), exp.shape)
    act = np.broadcast_to(act, exp.shape)
    with np.errstate(invalid="ignore", over="ignore"):
        err = np.abs(act - exp)
        same = (act == exp) | (np.isnan(act) & np.isnan(exp))
        bad = ~same & ~(err <= tol)
    if not bad.any():
        return None
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        ratio = np.where(bad, error_ratio(err, tol), -1.0)  # NaN against a number: inf
        rel = np.where(bad, err / np.abs(exp), 0.0)
    flat = int(np.argmax(ratio))
    index = tuple(int(i) for i in np.unravel_index(flat, exp.shape))
    finite_err = np.where(bad, np.where(np.isnan(err), np.inf, err), 0.0)
    return Mismatch(
        what=what,
        count=int(bad.sum()),
        total=int(exp.size),
        max_abs_error=float(finite_err.max()),
        max_rel_error=float(np.where(np.isnan(rel), np.inf, rel).max()),
        worst_index=index,
        actual=float(act[index]),
        expected=float(exp[index]),
        tolerance=float(tol[index]),
    )


def assert_within(
    actual: NDArray[Any],
    expected: NDArray[Any],
    tolerance: ArrayLike,
    *,
    invariant: str,
    what: str,
    message: str,
    stage: str | None = None,
) -> None:
    """Raise InvariantViolation(invariant, message) carrying the mismatch, if there is one."""
    mismatch = find_mismatch(actual, expected, tolerance, what=what)
    if mismatch is not None:
        raise InvariantViolation(invariant, message, mismatch=mismatch, stage=stage)
