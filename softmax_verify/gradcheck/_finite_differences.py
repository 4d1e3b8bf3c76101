"""Finite-difference machinery of the gradient checks: steps, perturbed points, chunking.

Derivations of the steps and of the perturbed points live next to the code below; the
tolerances built from them are derived in ``softmax_verify.tolerances`` (``difference_*``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from softmax_verify.core.implementation import Implementation
from softmax_verify.core.oracle import F64
from softmax_verify.core.oracle import f64 as _f64
from softmax_verify.gradcheck._scratch import scratch_forward
from softmax_verify.tolerances import LOGISTIC_SECOND, LOGISTIC_THIRD, difference_truncation

__all__ = ["column_chunks", "column_differences", "power_of_two", "steps"]


def power_of_two(h: float) -> float:
    """The power of two nearest ``h`` (in log scale): a step whose multiples are exact."""
    return float(2.0 ** round(math.log2(h)))


#: Rows x columns of the stacks of perturbed inputs that the column checks pass to one
#: forward call (512 KiB in float64): large enough to amortize a call's overhead, small
#: enough that the passes over a stack and its bounds run in cache.
_STACK_ENTRIES = 1 << 16


@dataclass(frozen=True)
class _Steps:
    r"""The perturbed values :math:`x_{rj} \pm h` of every entry, and the steps taken.

    ``plus`` and ``minus`` are ``x + h`` and ``x - h`` rounded to x's dtype (N, D);
    ``up`` and ``down`` the steps actually taken, :math:`h_\pm` (float64, exact: each
    is the difference of two nearby floats); ``width = fl(x_+ - x_-)`` (one rounding
    in float64); ``largest`` the largest step, which bounds how far any perturbed
    point is from x.
    """

    plus: NDArray[Any]
    minus: NDArray[Any]
    up: F64
    down: F64
    width: F64
    largest: float

    def truncation(self) -> F64:
        """Per entry (N, D): ``tolerances.difference_truncation`` with the logistic function's
        derivative bounds (softmax along one coordinate is logistic)."""
        return difference_truncation(
            self.up, self.down, second=LOGISTIC_SECOND, third=LOGISTIC_THIRD
        )


def steps(x: NDArray[Any], h: float) -> _Steps:
    """``x +/- h`` entry by entry; ValueError where the ulp of x exceeds h (no step exists)."""
    _check_step(x, h)
    x64 = _f64(x)
    plus, minus = (x64 + h).astype(x.dtype), (x64 - h).astype(x.dtype)
    up, down = _f64(plus) - x64, x64 - _f64(minus)
    return _Steps(
        plus=plus,
        minus=minus,
        up=up,
        down=down,
        width=_f64(plus) - _f64(minus),
        largest=float(max(up.max(), down.max())),
    )


def column_chunks(n: int, d: int, copies: int) -> list[tuple[int, int]]:
    """Chunks of columns such that ``copies`` stacked (N, D) arrays per column fit a stack."""
    cols = max(1, _STACK_ENTRIES // (copies * n * d))
    return [(start, min(start + cols, d)) for start in range(0, d, cols)]


def _check_step(x: NDArray[Any], h: float) -> None:
    largest = float(np.abs(x).max())
    if float(np.spacing(np.asarray(largest, dtype=x.dtype))) > h:
        raise ValueError(
            f"x has entries too large for a finite-difference step of {h:g} in {x.dtype}: "
            f"the ulp of |x| = {largest:g} exceeds it"
        )


def column_differences(
    impl: Implementation, x: NDArray[Any], steps: _Steps
) -> Iterator[tuple[int, int, F64]]:
    """``(start, stop, diff)``: central differences of the forward for columns ``start:stop``.

    ``diff[k, r, i] = y_ri(x + h_+ e_j) - y_ri(x - h_- e_j)`` for j = start + k, in float64
    (c, N, D). The inputs of a chunk of c columns are stacked into one (2cN, D) array and
    passed to one forward call: rows are independent (the same assumption as perturbing
    column j of every row at once), so each row's output is what the forward gives that
    row alone. The stack is scratch, handed over without a copy.
    """
    n, d = x.shape
    rows = np.arange(n)[None, :]
    for start, stop in column_chunks(n, d, 2):
        c = stop - start
        k, cols = np.arange(c)[:, None], np.arange(start, stop)[:, None]
        stack = np.empty((2, c, n, d), dtype=x.dtype)
        stack[:] = x
        stack[0, k, rows, cols] = steps.plus[:, start:stop].T
        stack[1, k, rows, cols] = steps.minus[:, start:stop].T
        out = scratch_forward(impl, stack.reshape(2 * c * n, d)).y.reshape(2, c, n, d)
        yield start, stop, np.subtract(out[0], out[1], dtype=np.float64)
