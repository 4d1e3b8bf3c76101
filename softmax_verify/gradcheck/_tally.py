"""Worst-entry accumulation of a gradient check's comparisons, and its result.

``GradcheckResult`` is re-exported by ``softmax_verify.gradcheck``; ``_ratio``, ``_worst``
and ``_result`` are shared by the checks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from softmax_verify.core.compare import Mismatch, error_ratio, find_mismatch
from softmax_verify.core.errors import InvariantViolation
from softmax_verify.core.oracle import f64 as _f64

F64 = NDArray[np.float64]


@dataclass(frozen=True)
class GradcheckResult:
    """Outcome of a gradient check: the worst entry by error-to-tolerance ratio.

    ``worst`` is ``(row, i, j)`` for a Jacobian entry dy_i/dx_j, ``(row, j)`` for an
    entry of a VJP or JVP; ``expected`` is the numerical value, ``actual`` the
    backward's.
    """

    passed: bool
    max_error: float
    tolerance: float
    worst: tuple[int, ...]
    expected: float
    actual: float
    forward_calls: int
    backward_calls: int
    mismatch: Mismatch | None = None

    def raise_if_failed(self, invariant: str) -> None:
        if not self.passed:
            raise InvariantViolation(
                invariant,
                "backward disagrees with central differences of forward",
                mismatch=self.mismatch,
            )


class _Tally:
    """The worst entry and the mismatch of one comparison, accumulated block by block of rows.

    Merging per-block results gives exactly what one pass over the whole array gives:
    the worst entry is the first one with the largest error-to-tolerance ratio, and the
    mismatch counts, maxima and worst entry are those of ``find_mismatch`` on the whole.
    """

    def __init__(self, what: str, shape: tuple[int, ...]) -> None:
        self.what = what
        self.shape = shape
        self.max_error = 0.0
        self.ratio = -1.0
        self.worst: tuple[int, ...] = (0,) * len(shape)
        self.expected = self.actual = self.tolerance = 0.0
        self.count = 0
        self.max_abs = self.max_rel = 0.0
        self.mismatch_ratio = -1.0
        self.mismatch: Mismatch | None = None

    def add(self, numerical: F64, analytic: NDArray[Any], tol: F64, row: int = 0) -> None:
        """Compare one block whose first row is row ``row`` of the whole."""
        if numerical.size == 0:
            return
        act = _f64(analytic)
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            err = np.abs(numerical - act)
            ratio = err / tol
            flat = int(np.argmax(ratio))  # the first NaN, if any: np.argmax ranks NaN first
            largest = float(ratio.flat[flat])
            if math.isnan(largest):
                # A NaN error ranks first (as inf); 0 / 0 (no error, no tolerance) is 0.
                ratio = error_ratio(err, tol)
                flat = int(np.argmax(ratio))
                largest = float(ratio.flat[flat])
        local = np.unravel_index(flat, ratio.shape)
        worst_error = float(err.max())
        self.max_error = max(self.max_error, math.inf if math.isnan(worst_error) else worst_error)
        if largest > self.ratio:
            self.ratio = largest
            self.worst = (int(local[0]) + int(row), *(int(i) for i in local[1:]))
            self.expected = float(numerical[local])
            self.actual = float(act[local])
            self.tolerance = float(tol[local])
        if largest < 1:
            return  # fl(err / tol) < 1 implies err < tol everywhere: no mismatch in this block
        found = find_mismatch(act, numerical, tol, what=self.what)
        if found is None:
            return
        self.count += found.count
        self.max_abs = max(self.max_abs, found.max_abs_error)
        self.max_rel = max(self.max_rel, found.max_rel_error)
        with np.errstate(invalid="ignore", over="ignore"):
            bad_err = np.abs(np.float64(found.actual) - np.float64(found.expected))
        bad_ratio = float(error_ratio(bad_err, found.tolerance))
        if bad_ratio > self.mismatch_ratio:
            self.mismatch_ratio = bad_ratio
            index = (int(found.worst_index[0]) + int(row), *found.worst_index[1:])
            self.mismatch = replace(found, worst_index=index)

    def merge(self, later: _Tally) -> None:
        """Take in the tally of blocks that come after this one's (rows counted in the whole):
        the same as adding its blocks here, in order."""
        self.max_error = max(self.max_error, later.max_error)
        if later.ratio > self.ratio:
            self.ratio, self.worst = later.ratio, later.worst
            self.expected, self.actual, self.tolerance = (
                later.expected,
                later.actual,
                later.tolerance,
            )
        self.count += later.count
        self.max_abs = max(self.max_abs, later.max_abs)
        self.max_rel = max(self.max_rel, later.max_rel)
        if later.mismatch_ratio > self.mismatch_ratio:
            self.mismatch_ratio, self.mismatch = later.mismatch_ratio, later.mismatch

    def result(self, forward_calls: int, backward_calls: int) -> GradcheckResult:
        mismatch = None
        if self.mismatch is not None:
            mismatch = replace(
                self.mismatch,
                count=self.count,
                total=math.prod(self.shape),
                max_abs_error=self.max_abs,
                max_rel_error=self.max_rel,
            )
        return GradcheckResult(
            passed=mismatch is None,
            max_error=self.max_error,
            tolerance=self.tolerance,
            worst=self.worst,
            expected=self.expected,
            actual=self.actual,
            forward_calls=forward_calls,
            backward_calls=backward_calls,
            mismatch=mismatch,
        )


def _result(
    numerical: F64, analytic: NDArray[Any], tol: F64, what: str, calls: tuple[int, int]
) -> GradcheckResult:
    tally = _Tally(what, numerical.shape)
    tally.add(numerical, analytic, tol)
    return tally.result(*calls)


def _jacobian_order(result: GradcheckResult) -> GradcheckResult:
    """``result`` with its indices (j, r, i), as the columns were compared, as (r, i, j)."""

    def order(index: tuple[int, ...]) -> tuple[int, ...]:
        j, r, i = index
        return (r, i, j)

    mismatch = result.mismatch
    if mismatch is not None:
        mismatch = replace(mismatch, worst_index=order(mismatch.worst_index))
    return replace(result, worst=order(result.worst), mismatch=mismatch)


def _ratio(result: GradcheckResult) -> float:
    """Error over tolerance at the result's worst entry (inf for NaN or a zero tolerance)."""
    err = abs(result.expected - result.actual)
    if math.isnan(err):
        return math.inf
    if result.tolerance > 0:
        return err / result.tolerance
    return math.inf if err > 0 else 0.0


def _worst(results: list[GradcheckResult]) -> GradcheckResult:
    """Of several directions' results, the failing one with the largest error-to-tolerance
    ratio at its worst entry, else the passing one with the largest ratio."""
    failing = [r for r in results if not r.passed]
    return max(failing or results, key=_ratio)
