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

from softmax_verify._tally import F64, _f64
from softmax_verify.implementation import Implementation
from softmax_verify.reference import softmax
from softmax_verify.tolerances import forward_error_bound

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
class _Columns:
    r"""Central differences for the columns ``start:stop`` (c of them), every row at once.

    ``diff[k, r, i] = y_ri(x + h_+ e_j) - y_ri(x - h_- e_j)`` for j = start + k (float64);
    ``steps[:, k, r]`` the steps ``(h_+, h_-)`` actually taken (``x +/- h`` is rounded
    to the dtype; measured), ``width[k, r] = fl(x_+ - x_-)`` (one rounding) and
    ``rounding[k, r, i]`` the forward's bound :math:`E^+ + E^-` at the two points.

    The bound at :math:`x \pm h_\pm e_j` is evaluated with :math:`e^{\max h_\pm} y_i(x)`
    in place of the exact probability there: along one coordinate
    :math:`|\partial \log y_i / \partial x_j| = |\delta_{ij} - y_j| \le 1`, so
    :math:`y_i(x \pm s e_j) \le e^s y_i(x)`, and the bound grows with the probability.
    This saves evaluating the reference at every perturbed point.
    """

    start: int
    stop: int
    diff: F64
    steps: F64
    width: F64
    rounding: F64


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


def _column_steps(impl: Implementation, x: NDArray[Any], y: F64, h: float) -> Iterator[_Columns]:
    """Central differences of the forward along every column, chunk by chunk of columns.

    The inputs ``x + h e_j`` and ``x - h e_j`` of a chunk are stacked into one
    (2cN, D) array and passed to one forward call: rows are independent (the same
    assumption as perturbing column j of every row at once), so each row's output is
    what the forward gives that row alone. The step is h for every entry; ValueError
    where the ulp of x exceeds it (``x +/- h`` would round back to x or far from it).
    ``y`` is the reference at x, for the rounding bounds (see ``_Columns``).
    """
    n, d = x.shape
    _check_step(x, h)
    x64 = _f64(x)
    for start, stop in _column_chunks(n, d, 2):
        c = stop - start
        k, cols = np.arange(c)[:, None], np.arange(start, stop)[:, None]
        rows = np.arange(n)[None, :]
        stack = np.empty((2, c, n, d), dtype=x.dtype)
        stack[:] = x
        stack[0, k, rows, cols] = x64[:, start:stop].T + h
        stack[1, k, rows, cols] = x64[:, start:stop].T - h
        moved = _f64(stack[:, k, rows, cols])  # (2, c, N): x_+ and x_-
        base = x64[:, start:stop].T
        steps = np.stack([moved[0] - base, base - moved[1]])
        flat = stack.reshape(2 * c * n, d)
        out = _f64(impl.forward(flat).y).reshape(2, c, n, d)
        above = np.exp(steps.max(axis=0))[:, :, None] * y  # >= y at both points (c, N, D)
        rounding = forward_error_bound(
            flat, np.broadcast_to(above, (2, c, n, d)).reshape(2 * c * n, d), x.dtype
        ).reshape(2, c, n, d)
        yield _Columns(
            start=start,
            stop=stop,
            diff=out[0] - out[1],
            steps=steps,
            width=moved[0] - moved[1],
            rounding=rounding[0] + rounding[1],
        )


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


def _row_blocks(n: int, d: int) -> list[tuple[int, int]]:
    rows = max(1, _BLOCK_ENTRIES // d)
    return [(start, min(start + rows, n)) for start in range(0, n, rows)]


def _step_points(
    x: NDArray[Any], u: NDArray[Any], h: float
) -> tuple[NDArray[Any], NDArray[Any], F64]:
    """``(x' + h u, x' - h u, shift)`` in x's dtype, both exact (see directional_check).

    ``x' = x`` wherever ``x +/- h u`` is exact; elsewhere x' is x on the step grid
    (``_on_step_grid``). ``shift`` (N, 1) is each row's :math:`\\max_i |x'_i - x_i|`
    (0 for most rows). ValueError if some ``x' +/- h u`` is still not exact (it
    overflows, or h is below x's ulp).
    """
    xp, xm = np.empty_like(x), np.empty_like(x)
    shift = np.zeros((x.shape[0], 1))
    for a, b in _row_blocks(*x.shape):
        x64 = _f64(x[a:b])
        step = h * _f64(u[a:b])  # exact: u has three significant bits, h is a power of two
        with np.errstate(over="ignore", invalid="ignore"):
            xp[a:b] = x64 + step
            xm[a:b] = x64 - step
            inexact = (_f64(xp[a:b]) - x64 != step) | (x64 - _f64(xm[a:b]) != step)
        if not inexact.any():
            continue
        rows, cols = np.nonzero(inexact)
        s = step[rows, cols]
        grid = _on_step_grid(x64[rows, cols], s, x.dtype)
        with np.errstate(over="ignore", invalid="ignore"):
            xp[a:b][rows, cols] = grid + s
            xm[a:b][rows, cols] = grid - s
            exact = (
                np.array_equal(_f64(grid.astype(x.dtype)), grid)
                and np.array_equal(_f64(xp[a:b][rows, cols]) - grid, s)
                and np.array_equal(grid - _f64(xm[a:b][rows, cols]), s)
            )
        if not exact:
            raise ValueError(f"x has entries too large for an exact step of {h:g} in {x.dtype}")
        np.maximum.at(shift[a:b, 0], rows, np.abs(grid - x64[rows, cols]))
    return xp, xm, shift
