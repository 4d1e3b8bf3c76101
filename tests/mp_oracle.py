r"""The exact oracle of the accuracy tests: mpmath at 50 digits.

Float32 and float64 values are exact binary fractions, so each entry enters mpmath
exactly; errors are measured in mpmath (``|mpf(y_hat) - y|``) and rounded once to float64,
so the oracle's own rounding does not enter them. Shared by tests/bundled/test_accuracy.py
and tests/core/test_oracle.py.
"""

from __future__ import annotations

from typing import Any

import mpmath
import numpy as np
import pytest
from numpy.typing import NDArray

from softmax_verify.strategies import DTYPES, shapes

FloatArray = NDArray[np.floating[Any]]
Float64Array = NDArray[np.float64]
MpRows = list[list[Any]]  # rows of mpmath.mpf

DPS = 50
SMALL = shapes(max_rows=4, max_cols=8)
BY_DTYPE = pytest.mark.parametrize("dtype", DTYPES, ids=str)


def mp_rows(a: FloatArray) -> MpRows:
    """Every entry as an exact mpf (float32 and float64 values are exact binary fractions)."""
    return [[mpmath.mpf(float(v)) for v in row] for row in np.asarray(a)]


def exact_softmax(x: FloatArray) -> MpRows:
    """Exact softmax rows: exp(x_i - m) / sum_j exp(x_j - m), at DPS digits."""
    with mpmath.workdps(DPS):
        rows = []
        for row in mp_rows(x):
            m = max(row)
            exps = [mpmath.exp(v - m) for v in row]
            total = mpmath.fsum(exps)
            rows.append([e / total for e in exps])
        return rows


def exact_shift_and_lse(x: FloatArray) -> tuple[MpRows, list[Any]]:
    """Exact ``t_i = m - x_i`` per entry and ``l = log sum_j exp(x_j - m)`` per row."""
    with mpmath.workdps(DPS):
        shifts, lses = [], []
        for row in mp_rows(x):
            m = max(row)
            shifts.append([m - v for v in row])
            lses.append(mpmath.log(mpmath.fsum(mpmath.exp(v - m) for v in row)))
        return shifts, lses


def to_float64(rows: MpRows) -> Float64Array:
    return np.array([[float(v) for v in row] for row in rows], dtype=np.float64)


def errors(computed: FloatArray, exact: MpRows) -> Float64Array:
    """``|computed - exact|`` evaluated exactly, then rounded once to float64."""
    with mpmath.workdps(DPS):
        return np.array(
            [
                [float(abs(mpmath.mpf(float(c)) - e)) for c, e in zip(crow, erow, strict=True)]
                for crow, erow in zip(np.asarray(computed), exact, strict=True)
            ],
            dtype=np.float64,
        )


def assert_within(err: Float64Array, bound: Float64Array, what: str, x: FloatArray) -> None:
    assert err.shape == bound.shape
    bad = ~(err <= bound)
    if bad.any():
        i = tuple(int(k) for k in np.argwhere(bad)[0])
        raise AssertionError(
            f"{what}: error {float(err[i])!r} exceeds the bound {float(bound[i])!r} at {i} "
            f"({int(bad.sum())} entries); x row = {np.asarray(x)[i[0]]!r}"
        )


def exact_vjp(exact_y: MpRows, g: FloatArray) -> MpRows:
    """Exact ``y_i (g_i - sum_j g_j y_j)`` from exact y and the (exact) entries of g."""
    with mpmath.workdps(DPS):
        out = []
        for yrow, grow in zip(exact_y, mp_rows(g), strict=True):
            inner = mpmath.fsum(gj * yj for gj, yj in zip(grow, yrow, strict=True))
            out.append([yi * (gi - inner) for yi, gi in zip(yrow, grow, strict=True)])
        return out


def exact_log_softmax(x: FloatArray) -> MpRows:
    shifts, lses = exact_shift_and_lse(x)
    with mpmath.workdps(DPS):
        return [[-t - lse for t in trow] for trow, lse in zip(shifts, lses, strict=True)]
