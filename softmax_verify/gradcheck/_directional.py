"""``directional_check``: ``backward(u)`` against two forward calls per random direction u."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from softmax_verify.core.implementation import Implementation
from softmax_verify.core.options import Accumulation
from softmax_verify.core.oracle import softmax as _exact
from softmax_verify.core.parallel import map_blocks
from softmax_verify.gradcheck._arguments import implementation, point
from softmax_verify.gradcheck._directions import (
    _draw_eighths,
    _each_direction,
    _Evaluated,
    _row_blocks,
    _step_for_magnitude,
)
from softmax_verify.gradcheck._finite_differences import power_of_two
from softmax_verify.gradcheck._tally import GradcheckResult, _Tally, _worst
from softmax_verify.tolerances import _eta_times, central_difference_step, directional_bound

__all__ = ["directional_check"]


def _directions_count(directions: object) -> int:
    if isinstance(directions, bool) or not isinstance(directions, int):
        raise TypeError(f"directions must be a positive int, got {type(directions).__name__}")
    if directions < 1:
        raise ValueError(f"directions must be a positive int, got {directions!r}")
    return directions


def _step(x: NDArray[Any]) -> tuple[float, float]:
    """The step h (a power of two, raised for large logits) and max |x|; ValueError where
    the ulp of max |x| exceeds the unraised step."""
    h0 = power_of_two(central_difference_step(x.shape[1], x.dtype))
    largest = float(max(x.max(), -x.min()))  # max |x| without an |x| temporary
    h = _step_for_magnitude(h0, largest, x.dtype)
    if h > 8 * h0:
        raise ValueError(
            f"x has entries too large for a finite-difference step of {h0:g} in {x.dtype}: "
            f"the ulp of |x| = {largest:g} exceeds it"
        )
    return h, largest


@dataclass(frozen=True)
class _Plan:
    """What a directional check starts from: the implementation and point checked, the step
    h and max |x| (``_step``), and the directions drawn (eighths: entries k in +-(4..7))."""

    impl: Implementation
    x: NDArray[Any]
    h: float
    largest: float
    draws: list[NDArray[np.int8]]


def _plan(
    forward: Callable[..., Any] | Implementation,
    backward: Callable[..., Any] | None,
    x: NDArray[Any],
    directions: int,
    seed: int,
) -> _Plan:
    """The arguments checked (TypeError/ValueError naming them), the step, and ``directions``
    random directions drawn from ``seed``: shared by softmax's and log_softmax's checks."""
    impl = implementation(forward, backward)
    x = point(x, "x")
    count = _directions_count(directions)
    h, largest = _step(x)
    rng = np.random.default_rng(seed)
    return _Plan(impl, x, h, largest, [_draw_eighths(rng, x.shape) for _ in range(count)])


@dataclass(frozen=True)
class _Comparison:
    """What comparing one block of rows of a direction needs: x, the step, how far the
    points are from x (``moved``, for :math:`\\eta`), the reference kept across
    directions (``held``, None with a single direction), and the half-precision
    accumulation model the tolerances assume (``accumulate``)."""

    x: NDArray[Any]
    h: float
    moved: float
    held: NDArray[np.float64] | None
    accumulate: Accumulation

    def block(self, k: int, one: _Evaluated, name: str, rows: tuple[int, int]) -> _Tally:
        """Direction k's rows ``a:b`` compared within ``tolerances.directional_bound``."""
        a, b = rows
        x = self.x
        if self.held is None:
            y = _exact(x[a:b])
        else:
            y = self.held[a:b]
            if k == 0:
                y[...] = _exact(x[a:b])
        y_eta = _eta_times(x[a:b], y, x.dtype, self.moved, accumulate=self.accumulate)
        eighths = one.eighths[a:b]
        # |u| and the range of u per row, rebuilt from 8u (u itself was handed over).
        g = np.abs(eighths, dtype=np.float64)
        g *= 0.125
        spread = eighths.max(axis=1) - eighths.min(axis=1).astype(np.float64)
        spread *= 0.125
        delta = one.moved.shift[a:b, 0]
        tol = directional_bound(
            y,
            y_eta,
            g,
            spread,
            delta,
            self.h,
            x.dtype,
            overwrite_y=self.held is None,
            accumulate=self.accumulate,
        )
        tally = _Tally(name, x.shape)
        tally.add(one.numerical[a:b], one.dx[a:b], tol, a)
        return tally

    def direction(self, k: int, one: _Evaluated) -> _Tally:
        """Direction k compared block by block of rows on the pool, merged."""
        name = f"backward(u_{k}) vs J u_{k}"
        n, d = self.x.shape
        blocks = map_blocks(lambda rows: self.block(k, one, name, rows), _row_blocks(n, d))
        tally = blocks[0]
        for part in blocks[1:]:
            tally.merge(part)
        return tally


def directional_check(
    forward: Callable[..., Any] | Implementation,
    backward: Callable[..., Any] | None,
    x: NDArray[Any],
    *,
    directions: int = 2,
    seed: int = 0,
    accumulate: Accumulation = "float32",
) -> GradcheckResult:
    r"""``backward(u)`` against :math:`J u \approx (f(x + h u) - f(x - h u)) / 2h`, entry by entry.

    Directions have entries :math:`\pm k/8`, k in 4..7 (every entry O(1), so every
    Jacobian column contributes); h is a power of two. ``backward(u)`` is taken at x
    (with the cache of ``forward(x)``); the central difference is taken about
    :math:`x'`, x rounded, entry by entry, to the spacing of :math:`|x| + h|u|` in x's
    dtype, so that :math:`x' \pm h u` is exact. :math:`x' = x` except where
    :math:`x \pm h u` would round (x within :math:`h|u|` of a power of two, or
    :math:`|x| < h|u|`), and there :math:`|x' - x|` is at most half an ulp of
    :math:`|x| + h|u|`. Where the ulp of :math:`\max|x| + h` exceeds :math:`h/8` (the
    granularity of :math:`h u`), h is raised to 8 such ulps, and the tolerance grows with
    it; where that ulp exceeds the unraised h itself, ValueError (as in the other checks).

    Tolerance per entry: ``tolerances.directional_bound`` (truncation, the forward's bound
    at both points over 2h, the float64 subtraction, the move from x to x', and the
    backward's own bound), with :math:`\eta` at x moved by :math:`h + \delta_{max}`
    (half an ulp of :math:`\max|x| + h`, the most any entry of x' moves).

    Calls: ``forward(x)`` once for the cache, then per direction ``backward(u)`` and the
    forward at each of the two points: whole (N, D) arrays, so the code under test runs at
    the size and shape it is checked at. u and the points are scratch, handed over without
    copies, in one buffer (see ``_directions._evaluate``). Each direction is compared as
    soon as its calls return, block by block of rows, in cache, so memory does not grow
    with the number of directions past two: with several, the float64 reference at x is
    kept (one array of x's size), and :math:`\eta` is recomputed per direction, which
    costs less than keeping more arrays. Of several directions, the failing one with the
    largest error-to-tolerance ratio at its worst entry is returned, else the passing one
    with the largest ratio.

    ``accumulate``: the half-precision accumulation model the tolerances assume.
    """
    plan = _plan(forward, backward, x, directions, seed)
    x, h = plan.x, plan.h
    moved = h + 0.5 * float(np.spacing(np.asarray(plan.largest + h, dtype=x.dtype)))
    # The reference at x, kept for the later directions when there are several: it is the
    # costliest pass of a comparison (a float64 exp per entry), and one array of x's size
    # costs less than recomputing it.
    held = np.empty(x.shape) if len(plan.draws) > 1 else None
    comparison = _Comparison(x, h, moved, held, accumulate)
    tallies, forward_calls, backward_calls = _each_direction(
        plan.impl, x, plan.draws, h, plan.largest, comparison.direction
    )
    return _worst([t.result(forward_calls, backward_calls) for t in tallies])
