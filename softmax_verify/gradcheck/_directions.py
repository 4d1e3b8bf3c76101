"""The directional check's points and calls: directions, exact steps along them, and the
calls that give ``backward(u)`` and the two forward values of a central difference.

Memory is part of the design: at the sizes the check is meant for (4096 x 4096 and up)
every fresh array costs about as much as a pass over it, because each page is zeroed on
first touch. So one (N, D) buffer of the check's serves u, then both points in turn,
then the differences, then the next direction's u, wherever the code under test's
outputs leave it free.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray

from softmax_verify.core.implementation import Implementation
from softmax_verify.core.oracle import F64
from softmax_verify.core.oracle import f64 as _f64
from softmax_verify.core.parallel import map_blocks
from softmax_verify.gradcheck._scratch import scratch_backward, scratch_forward

_T = TypeVar("_T")


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


#: Entries per block of rows in directional_check's elementwise work (1 MiB in float64),
#: so that its many passes over each block run in cache rather than in main memory. Not
#: smaller: a block's some fifty numpy calls cost the same whatever its size, and that fixed
#: cost outweighs the cache on small blocks (measurements: bench/results.md, notes).
_BLOCK_ENTRIES = 1 << 17


def _row_blocks(n: int, d: int) -> list[tuple[int, int]]:
    rows = max(1, _BLOCK_ENTRIES // d)
    return [(start, min(start + rows, n)) for start in range(0, n, rows)]


def _draw_eighths(rng: np.random.Generator, shape: tuple[int, ...]) -> NDArray[np.int8]:
    r"""A direction in eighths: 8u, with entries +/- k for k in 4..7, uniformly.

    u = eighths / 8 has three significant bits at most, so u, h u and the points' steps are
    exact in every dtype, and every entry is O(1), so every Jacobian column contributes.
    Kept as int8 (an eighth of float64's memory), and turned into u by one multiply (a
    table lookup would first widen each int8 index to intp).

    Three bits of one random byte per entry, from the bit generator's raw output (a
    quarter of the time of ``rng.integers`` at int8, whose bounded draws are the slowest
    part of a direction otherwise): the two low bits give k - 4, the top bit the sign, as
    :math:`-k = (k \oplus s) - s` for s = -1 (two's complement).
    """
    size = math.prod(shape)
    raw = rng.bit_generator.random_raw(-(-size // 8))  # 8 bytes per uint64
    eighths = raw.view(np.int8)[:size].reshape(shape)
    sign = eighths >> 7  # arithmetic shift: -1 where the top bit is set, else 0
    eighths &= 3
    eighths |= 4  # k in 4..7
    eighths ^= sign
    eighths -= sign
    return eighths


def _direction(
    eighths: NDArray[np.int8], dtype: np.dtype[Any], out: NDArray[Any] | None = None
) -> NDArray[Any]:
    """The direction u = eighths / 8 in ``dtype`` (exact), filled block by block on the pool,
    into ``out`` (a free buffer of that shape and dtype) when given."""
    u = np.empty(eighths.shape, dtype=dtype) if out is None else out
    eighth = dtype.type(0.125)

    def block(rows: tuple[int, int]) -> None:
        np.multiply(eighths[rows[0] : rows[1]], eighth, out=u[rows[0] : rows[1]])

    map_blocks(block, _row_blocks(*eighths.shape))
    return u


@dataclass(frozen=True)
class _Moved:
    """The entries where x' differs from x or ``x +/- h u`` is not exact: their row and
    column, x' there and the step s = h u there (all float64), and each row's shift
    :math:`\\max_i |x'_i - x_i|` (N, 1)."""

    rows: NDArray[np.intp]
    cols: NDArray[np.intp]
    grid: F64
    step: F64
    shift: F64


def _step_points(
    x: NDArray[Any], eighths: NDArray[np.int8], h: float, largest: float, out: NDArray[Any]
) -> _Moved:
    """Fill ``out`` (N, D) with ``x' + h u`` in x's dtype, exact, for u = eighths / 8 and
    ``largest`` = max |x|; return where x' is not x (``_Moved``), for ``_minus_points``
    and the tolerance.

    ``x' = x`` wherever ``x +/- h u`` is exact; elsewhere x' is x on the step grid
    (``_on_step_grid``). The test, for :math:`s = hu`, needs the ulp of every x to divide
    h/8 (checked here; ``_step_for_magnitude`` makes it so), and then, where
    :math:`|x| \\ge 3h \\ge 3|s|`:

    - the point that moves toward zero is exact: x and s are multiples of ulp(x), and so
      is the difference, whose magnitude is below |x|; so at most the other one rounds;
    - :math:`fl(x + s) - fl(x - s)` is exact in float64: it is for float32 values, and for
      float64 ones both points have x's sign and are within a factor 2 of each other
      (Sterbenz), since :math:`(|x| + |s|) \\le 2 (|x| - |s|)`;

    so the pair is exact if and only if that difference is 2s. Entries with
    :math:`|x| < 3h` go to the grid without the test. ValueError if some ``x' +/- h u``
    is still not exact (it overflows).
    """
    with np.errstate(over="ignore", invalid="ignore"):
        ulp = float(np.spacing(np.asarray(largest + h, dtype=x.dtype)))
    if not ulp <= h / 8:
        raise ValueError(f"x has entries too large for an exact step of {h:g} in {x.dtype}")
    eighth_h = h / 8  # s = eighths * h / 8, exact: h is a power of two
    shift = np.zeros((x.shape[0], 1))

    def block(rows: tuple[int, int]) -> tuple[NDArray[np.intp], NDArray[np.intp], F64, F64]:
        a, b = rows
        x64 = _f64(x[a:b])
        plus = out[a:b]
        rows_, cols, s = _plus_and_inexact(x64, np.multiply(eighths[a:b], eighth_h), plus, h)
        grid = _moved_to_grid(x64[rows_, cols], s, plus, (rows_, cols), h)
        np.maximum.at(shift[a:b, 0], rows_, np.abs(grid - x64[rows_, cols]))
        return rows_ + a, cols, grid, s

    blocks = map_blocks(block, _row_blocks(*x.shape))  # disjoint rows of out and shift
    return _Moved(
        rows=np.concatenate([part[0] for part in blocks]),
        cols=np.concatenate([part[1] for part in blocks]),
        grid=np.concatenate([part[2] for part in blocks]),
        step=np.concatenate([part[3] for part in blocks]),
        shift=shift,
    )


def _plus_and_inexact(
    x64: F64, step: F64, plus: NDArray[Any], h: float
) -> tuple[NDArray[np.intp], NDArray[np.intp], F64]:
    """Fill ``plus`` with ``fl(x + s)`` for the steps s = ``step`` (overwritten); return the
    entries where the pair ``x +/- s`` is not exact or :math:`|x| < 3h` (``_step_points``'s
    test): their rows, columns and s there."""
    with np.errstate(over="ignore", invalid="ignore"):
        # One rounding each: for float32 x with |x| >= 3h, x + s is exact in float64
        # (ulp(x) divides s and |s| <= |x|: the sum has at most 25 bits).
        np.add(x64, step, out=plus, casting="same_kind")
        width = np.subtract(plus, np.subtract(x64, step, dtype=plus.dtype), dtype=np.float64)
        step += step
        inexact = width != step
        inexact |= np.abs(x64) < 3 * h
    rows_, cols = np.divmod(np.flatnonzero(inexact), inexact.shape[1])  # faster than 2-D
    return rows_, cols, 0.5 * step[rows_, cols]


def _moved_to_grid(
    x64: F64, s: F64, plus: NDArray[Any], at: tuple[NDArray[np.intp], NDArray[np.intp]], h: float
) -> F64:
    """x' on the step grid for the entries ``x64`` with steps ``s``, and ``x' + s`` written to
    ``plus`` at ``at``; ValueError unless x', ``x' + s`` and ``x' - s`` are exact in x's dtype."""
    grid = _on_step_grid(x64, s, plus.dtype)
    with np.errstate(over="ignore", invalid="ignore"):
        plus[at] = grid + s
        minus = (grid - s).astype(plus.dtype)
        exact = (
            np.array_equal(_f64(grid.astype(plus.dtype)), grid)
            and np.array_equal(_f64(plus[at]) - grid, s)
            and np.array_equal(grid - _f64(minus), s)
        )
    if not exact:
        raise ValueError(f"x has entries too large for an exact step of {h:g} in {plus.dtype}")
    return grid


def _minus_points(
    x: NDArray[Any], eighths: NDArray[np.int8], h: float, moved: _Moved, out: NDArray[Any]
) -> None:
    """Fill ``out`` (N, D) with ``x' - h u``, the partner of ``_step_points``'s ``x' + h u``:
    ``x - h u`` (exact wherever x' = x), then ``x' - s`` at the moved entries."""

    def block(rows: tuple[int, int]) -> None:
        a, b = rows
        step = np.multiply(eighths[a:b], h / 8)
        with np.errstate(over="ignore", invalid="ignore"):
            np.subtract(_f64(x[a:b]), step, out=out[a:b], casting="same_kind")

    map_blocks(block, _row_blocks(*x.shape))
    out[moved.rows, moved.cols] = moved.grid - moved.step


def _differences(plus: NDArray[Any], minus: NDArray[Any], h: float, spare: NDArray[Any]) -> F64:
    """``(plus - minus) / 2h`` in float64 (N, D), block by block on the pool. One rounding
    (the subtraction's, none for float32 outputs): 1/2h is a power of two at least 1, and
    the difference at most 2.

    The result goes into ``spare`` (the buffer of the points, which nobody reads again)
    when it is float64 and shares no memory with ``plus`` or ``minus`` (a forward that
    worked in place): fresh memory is the costliest part of a pass at this size, as every
    page is zeroed on first touch.
    """
    n, d = plus.shape
    reuse = spare.dtype == np.float64 and not (
        np.may_share_memory(spare, plus) or np.may_share_memory(spare, minus)
    )
    numerical: F64 = spare if reuse else np.empty((n, d))

    def block(rows: tuple[int, int]) -> None:
        a, b = rows
        part = numerical[a:b]
        np.subtract(plus[a:b], minus[a:b], out=part, dtype=np.float64)
        part *= 1 / (2 * h)

    map_blocks(block, _row_blocks(n, d))
    return numerical


@dataclass(frozen=True)
class _Evaluated:
    """One direction, evaluated: ``backward(u)`` at x and the central differences
    ``(f(x' + hu) - f(x' - hu)) / 2h`` (float64), where x' differs from x."""

    eighths: NDArray[np.int8]
    moved: _Moved
    numerical: F64
    dx: NDArray[Any]


def _evaluate(
    impl: Implementation,
    x: NDArray[Any],
    eighths: NDArray[np.int8],
    h: float,
    largest: float,
    cache: object,
    spare: NDArray[Any] | None,
    *,
    last: bool,
    safe: bool,
) -> tuple[_Evaluated, tuple[NDArray[Any], ...], object, int, NDArray[Any] | None]:
    """``backward(u, cache)``, then ``forward(x' + hu)`` and ``forward(x' - hu)``: two (N, D)
    calls, the shape of x, so a framework that compiles per shape compiles once. Returns
    the direction, the outputs of the calls, the cache for the next backward, the
    number of forward calls, and the check's buffer once this direction is compared (for
    the next direction's u; None if an output shares its memory).

    u and the points are scratch, handed over without copies, all in one buffer: u's, once
    the backward has returned (a backward does not keep its upstream), unless an output
    is a view of it. With ``safe``, each output is copied as it arrives. A backward that
    consumes its cache gets a fresh ``forward(x)`` for the next call (unless ``last``).
    """

    def owned(array: NDArray[Any]) -> NDArray[Any]:
        return array.copy() if safe else array

    calls = 0
    u = _direction(eighths, x.dtype, spare)
    back = scratch_backward(impl, u, cache, watch_cache=not last)
    dx = owned(back.dx)
    if back.mutated_cache:
        cache = scratch_forward(impl, x.copy()).cache
        calls += 1
    buffer = u if not np.may_share_memory(dx, u) else np.empty_like(x)
    moved = _step_points(x, eighths, h, largest, buffer)
    plus = owned(scratch_forward(impl, buffer).y)
    if np.may_share_memory(plus, buffer):
        buffer = np.empty_like(x)
    _minus_points(x, eighths, h, moved, buffer)
    minus = owned(scratch_forward(impl, buffer).y)
    calls += 2
    numerical = _differences(plus, minus, h, buffer)
    outputs = (dx, plus, minus)
    free = None if any(np.may_share_memory(buffer, out) for out in outputs) else buffer
    return _Evaluated(eighths, moved, numerical, dx), outputs, cache, calls, free


def _each_direction(
    impl: Implementation,
    x: NDArray[Any],
    draws: list[NDArray[np.int8]],
    h: float,
    largest: float,
    compare: Callable[[int, _Evaluated], _T],
) -> tuple[list[_T], int, int]:
    """``forward(x)`` (on a copy: the caller's x is never handed over) for the cache, then
    each direction in turn (``_evaluate``), given to ``compare`` (with its index) before the
    next one's calls; returns what ``compare`` returned, and the numbers of forward and
    backward calls.

    So only one direction's arrays are alive at a time: memory does not grow with the
    number of directions (each held back would keep dx and the differences, two arrays of
    x's size, and make the next direction's outputs fresh memory).

    A direction's outputs are read after later calls (dx after both forwards, each forward's
    output after the other's call), so an implementation that returns one internal buffer
    from every call (each output overwriting the last) would corrupt them. That shows as
    the direction's outputs sharing memory. Then that direction is evaluated again from a
    fresh cache, and from there on every output is copied as it arrives.
    """
    cache = scratch_forward(impl, x.copy()).cache
    forward_calls, backward_calls, safe = 1, 0, False
    compared: list[_T] = []
    spare: NDArray[Any] | None = None  # the last direction's buffer, free once compared
    for k, eighths in enumerate(draws):
        last = k + 1 == len(draws)
        evaluate = partial(
            _evaluate,
            impl,
            x,
            eighths,
            h,
            largest,
            last=last,
        )
        one, outputs, next_cache, calls, free = evaluate(cache, spare, safe=safe)
        forward_calls, backward_calls = forward_calls + calls, backward_calls + 1
        if not safe and any(
            np.may_share_memory(a, b) for i, a in enumerate(outputs) for b in outputs[i + 1 :]
        ):
            del one, outputs, next_cache
            safe = True
            cache = scratch_forward(impl, x.copy()).cache
            one, outputs, next_cache, calls, free = evaluate(cache, None, safe=True)
            forward_calls, backward_calls = forward_calls + 1 + calls, backward_calls + 1
        del outputs  # the points are not read again; dx and the differences are in one
        cache = next_cache
        compared.append(compare(k, one))
        del one  # gone before the next direction allocates
        spare = free
    return compared, forward_calls, backward_calls
