"""Finite-difference machinery of the gradient checks: steps, perturbed points, chunking.

Derivations of the steps and of the perturbed points live next to the code below; the
tolerances built from them are derived in the docstrings of ``softmax_verify.gradcheck``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from softmax_verify._oracle import F64
from softmax_verify._oracle import f64 as _f64
from softmax_verify.implementation import Implementation
from softmax_verify.tolerances import _tiny

#: max |sigma''| of the logistic function: sigma(1 - sigma)(1 - 2 sigma) peaks at 1/(6 sqrt 3).
_SECOND = 1 / (6 * math.sqrt(3))
#: max |sigma'''|: sigma(1 - sigma)(1 - 6 sigma(1 - sigma)) is -1/8 at sigma = 1/2.
_THIRD = 1 / 8


def _power_of_two(h: float) -> float:
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
        r"""Per entry (N, D): :math:`\max(h_\pm)^2/48 + |h_+ - h_-| / (12\sqrt3)`.

        The error of :math:`(f(x + h_+) - f(x - h_-)) / (h_+ + h_-)` against
        :math:`f'(x)`, by Taylor's theorem at both points, for f of one coordinate whose
        second and third derivatives are at most those of the logistic function (softmax
        along one coordinate is logistic): ``_SECOND`` and ``_THIRD``. For a weighted sum
        of outputs, multiply by the range of the weights.
        """
        out: F64 = np.maximum(self.up, self.down) ** 2 * (_THIRD / 6)
        out += np.abs(self.up - self.down) * (_SECOND / 2)
        return out


def _steps(x: NDArray[Any], h: float) -> _Steps:
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


def _rounding(eta: F64, y: F64, largest: float, dtype: np.dtype[Any]) -> F64:
    r""":math:`E^+_i + E^-_i`: the forward's bound at both points :math:`x \pm h_\pm e_j`,
    for every column j at once (N, D).

    ``eta`` is ``forward_relative_bound(x, dtype, moved=largest)``: at a point that moved
    one coordinate by s <= ``largest``, :math:`\eta_i` is at most that, and the probability
    at most :math:`e^s y_i(x)` (along one coordinate :math:`|\partial \log y_i / \partial
    x_j| = |\delta_{ij} - y_j| \le 1`); the bound :math:`\eta_i y_i + \lambda` grows
    with both. So one array serves every column, and the reference is evaluated at x only.
    """
    out: F64 = eta * y
    out *= 2 * math.exp(largest)
    out += 2 * _tiny(dtype)
    return out


def _column_chunks(n: int, d: int, copies: int) -> list[tuple[int, int]]:
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


def _column_differences(
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
    for start, stop in _column_chunks(n, d, 2):
        c = stop - start
        k, cols = np.arange(c)[:, None], np.arange(start, stop)[:, None]
        stack = np.empty((2, c, n, d), dtype=x.dtype)
        stack[:] = x
        stack[0, k, rows, cols] = steps.plus[:, start:stop].T
        stack[1, k, rows, cols] = steps.minus[:, start:stop].T
        out = impl.forward(stack.reshape(2 * c * n, d), scratch=True).y.reshape(2, c, n, d)
        yield start, stop, np.subtract(out[0], out[1], dtype=np.float64)
