"""Finite-difference machinery of the gradient checks: steps, perturbed points, chunking.

Derivations of the steps and of the perturbed points live next to the code below; the
tolerances built from them are derived in the docstrings of ``softmax_verify.gradcheck``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray

from softmax_verify._tally import F64, _f64
from softmax_verify.implementation import Implementation
from softmax_verify.reference import softmax

T = TypeVar("T")

#: max |sigma''| of the logistic function: sigma(1 - sigma)(1 - 2 sigma) peaks at 1/(6 sqrt 3).
_SECOND = 1 / (6 * math.sqrt(3))
#: max |sigma'''|: sigma(1 - sigma)(1 - 6 sigma(1 - sigma)) is -1/8 at sigma = 1/2.
_THIRD = 1 / 8


def _power_of_two(h: float) -> float:
    return float(2.0 ** round(math.log2(h)))


def _exact(x: NDArray[Any]) -> F64:
    return _f64(softmax(_f64(x)))


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
    out += 2 * float(np.finfo(dtype).smallest_normal)
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


def _on_step_grid(x64: F64, step: F64, dtype: np.dtype[Any]) -> F64:
    r"""``x`` rounded, entry by entry, to the spacing of ``|x| + |step|`` in ``dtype``.

    With s that spacing (a power of two), :math:`x' \pm step` is exact in ``dtype``
    whenever ``step`` is a multiple of s: both are multiples of s no larger in magnitude
    than :math:`|x| + |step| + s/2`, which fits s's binade. Where ``x +/- step`` is exact
    already, x is a multiple of s and is unchanged; elsewhere (x within ``|step|`` of a
    power of two, or ``|x| < |step|``) it moves by at most s/2, half an ulp of
    ``|x| + |step|``. Dividing and multiplying by s and rounding are exact in float64.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        s = np.spacing((np.abs(x64) + np.abs(step)).astype(dtype)).astype(np.float64)
        grid: F64 = np.round(x64 / s) * s
    return grid


def _step_for_magnitude(h: float, largest: float, dtype: np.dtype[Any]) -> float:
    """The power of two ``h``, raised until ``h / 8`` is a multiple of the ulp of ``largest + h``.

    Then every ``h * u`` (u in multiples of 1/8) is a multiple of the spacing that
    ``_on_step_grid`` rounds to, at every entry. Unchanged for ordinary logits.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        for _ in range(4):  # raising h moves largest + h up a binade at most once or twice
            ulp = float(np.spacing(np.asarray(largest + h, dtype=dtype)))
            if not math.isfinite(ulp) or 8 * ulp <= h:
                break
            h = 8 * ulp
    return h


#: Entries per block of rows in directional_check's elementwise work (256 KiB in float64),
#: so that its many passes over each block run in cache rather than in main memory.
_BLOCK_ENTRIES = 1 << 15

#: The entries of a direction: +/- k/8 for k in 4..8 (three significant bits at most).
_DIRECTION_ENTRIES = np.array([-8, -7, -6, -5, -4, 4, 5, 6, 7, 8], dtype=np.float64) / 8
_ABS_ENTRIES = np.abs(_DIRECTION_ENTRIES)


def _row_blocks(n: int, d: int) -> list[tuple[int, int]]:
    rows = max(1, _BLOCK_ENTRIES // d)
    return [(start, min(start + rows, n)) for start in range(0, n, rows)]


def _threads() -> int:
    """Threads for the checks' own blockwise work: the cores this process may use, up to 4."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on every platform
        cores = os.cpu_count() or 1
    return max(1, min(cores, 4))


def _map_blocks(func: Callable[[tuple[int, int]], T], blocks: list[tuple[int, int]]) -> list[T]:
    """``[func(block) for block in blocks]``, on several threads when there are several blocks.

    Row blocks are independent and numpy releases the GIL inside its loops, so the checks'
    elementwise work (the bounds, the comparisons) runs on every core, as the frameworks'
    own kernels do. Results come back in block order.
    """
    threads = _threads()
    if threads == 1 or len(blocks) < 2:
        return [func(block) for block in blocks]
    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(func, blocks))


def _step_points(x: NDArray[Any], u: NDArray[Any], h: float, out: NDArray[Any]) -> F64:
    """Fill ``out`` (2, N, D) with ``x' + h u`` and ``x' - h u`` in x's dtype, both exact;
    return ``shift`` (N, 1), each row's :math:`\\max_i |x'_i - x_i|` (0 for most rows).

    ``x' = x`` wherever ``x +/- h u`` is exact; elsewhere x' is x on the step grid
    (``_on_step_grid``). Exactness is tested as ``fl(fl(x + s) - x) == s``, which is
    exact (Fast2Sum) where :math:`|x| \\ge |s|`; entries with :math:`|x| < h` go to the
    grid without the test. ValueError if some ``x' +/- h u`` is still not exact (it
    overflows, or h is below x's ulp).
    """
    shift = np.zeros((x.shape[0], 1))

    def block(rows: tuple[int, int]) -> None:
        a, b = rows
        x64 = _f64(x[a:b])
        step = _f64(u[a:b]) * h  # exact: u has three significant bits, h is a power of two
        plus, minus = out[0, a:b], out[1, a:b]
        with np.errstate(over="ignore", invalid="ignore"):
            np.add(x64, step, out=plus, casting="same_kind")
            np.subtract(x64, step, out=minus, casting="same_kind")
            inexact = np.abs(x64) < h
            inexact |= np.subtract(plus, x64, dtype=np.float64) != step
            inexact |= np.subtract(x64, minus, dtype=np.float64) != step
        if not inexact.any():
            return
        rows_, cols = np.divmod(np.flatnonzero(inexact), inexact.shape[1])  # faster than 2-D
        s = step[rows_, cols]
        grid = _on_step_grid(x64[rows_, cols], s, x.dtype)
        with np.errstate(over="ignore", invalid="ignore"):
            plus[rows_, cols] = grid + s
            minus[rows_, cols] = grid - s
            exact = (
                np.array_equal(_f64(grid.astype(x.dtype)), grid)
                and np.array_equal(_f64(plus[rows_, cols]) - grid, s)
                and np.array_equal(grid - _f64(minus[rows_, cols]), s)
            )
        if not exact:
            raise ValueError(f"x has entries too large for an exact step of {h:g} in {x.dtype}")
        np.maximum.at(shift[a:b, 0], rows_, np.abs(grid - x64[rows_, cols]))

    _map_blocks(block, _row_blocks(*x.shape))  # blocks write disjoint rows of out and shift
    return shift
