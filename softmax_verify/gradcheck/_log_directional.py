r"""``log_softmax_directional_check``: log_softmax's backward against two forward calls per
random direction, entry by entry.

log_softmax's Jacobian :math:`J = I - \mathbf 1 y^\top` is not symmetric, so ``backward(u)``
cannot be compared with :math:`J u` as softmax's is (``directional_check``). But
:math:`\operatorname{diag}(y) J` is softmax's Jacobian, which is: :math:`J^\top (y \odot u) =
y \odot (J u)`. The check hands the backward the upstream :math:`g = w \odot u`, with
:math:`w = \operatorname{softmax}(\hat z)` from the forward's own output at x, and compares
``backward(g)`` with :math:`w \odot (\hat z(x' + hu) - \hat z(x' - hu)) / 2h` entry by
entry (x' is x on the step grid, as in ``directional_check``). The tolerance and its
derivation: ``tolerances.log_softmax_directional_bound``.

Power: let :math:`B = J_f^\top + E` for the forward's own Jacobian :math:`J_f`. The
comparison differs from zero by :math:`E (w \odot u)` (beyond rounding and truncation),
so a linear backward escapes only if :math:`E\operatorname{diag}(w) u` is within tolerance
for every random u tried, which needs :math:`E \operatorname{diag}(w)` itself below it:
every entry of dx is compared, every column of E weighted by its probability.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from softmax_verify.core.implementation import Implementation
from softmax_verify.core.options import Accumulation
from softmax_verify.core.oracle import F64
from softmax_verify.core.oracle import log_softmax as _exact
from softmax_verify.gradcheck._directional import _plan
from softmax_verify.gradcheck._directions import _minus_points, _step_points
from softmax_verify.gradcheck._scratch import scratch_backward, scratch_forward
from softmax_verify.gradcheck._tally import GradcheckResult, _result, _worst
from softmax_verify.tolerances import log_softmax_directional_bound

__all__ = ["log_softmax_directional_check"]


def _weights(z_hat: NDArray[Any]) -> F64:
    """:math:`w = \\operatorname{softmax}(\\hat z)` per row, in float64 (NaN rows stay NaN)."""
    z = np.array(z_hat, dtype=np.float64)
    with np.errstate(all="ignore"):
        z -= z.max(axis=1, keepdims=True)
        np.exp(z, out=z)
        z /= z.sum(axis=1, keepdims=True)
    return z


def _owned(array: NDArray[Any]) -> F64:
    """A float64 copy: the checks' buffers are reused, and a forward may return a view of
    its input."""
    return np.array(array, dtype=np.float64)


def _one_direction(
    impl: Implementation,
    x: NDArray[Any],
    eighths: NDArray[np.int8],
    state: tuple[float, float, F64, object],
    accumulate: Accumulation,
    *,
    last: bool,
) -> tuple[GradcheckResult, object, int]:
    """``backward(w * u)`` at x and the forward at :math:`x' \\pm hu`, compared: the result,
    the cache for the next direction, and the forward calls made."""
    h, largest, w, cache = state
    u = eighths.astype(np.float64)
    u *= 0.125
    with np.errstate(all="ignore"):
        g = (w * u).astype(x.dtype)
    back = scratch_backward(impl, g, cache, watch_cache=not last)
    dx = _owned(back.dx)
    calls = 0
    if back.mutated_cache:
        cache = scratch_forward(impl, x.copy()).cache
        calls += 1
    buffer = np.empty_like(x)
    moved = _step_points(x, eighths, h, largest, buffer)
    plus = _owned(scratch_forward(impl, buffer).y)
    buffer = np.empty_like(x)  # the forward may have kept or returned the last one
    _minus_points(x, eighths, h, moved, buffer)
    minus = _owned(scratch_forward(impl, buffer).y)
    calls += 2
    with np.errstate(all="ignore"):
        numerical = (plus - minus) * (1 / (2 * h))
        numerical *= w
    tol = log_softmax_directional_bound(
        x, _exact(x), u, moved.shift, h, x.dtype, accumulate=accumulate
    )
    what = "backward(w * u) vs w * (z(x + h u) - z(x - h u)) / 2h"
    return _result(numerical, dx, tol, what, (calls, 1)), cache, calls


def log_softmax_directional_check(
    forward: Callable[..., Any] | Implementation,
    backward: Callable[..., Any] | None,
    x: NDArray[Any],
    *,
    directions: int = 2,
    seed: int = 0,
    accumulate: Accumulation = "float32",
) -> GradcheckResult:
    r"""``backward(w * u)`` against :math:`w \odot (f(x' + hu) - f(x' - hu)) / 2h` for a
    log_softmax, entry by entry, along ``directions`` random directions u (module docstring).

    Directions, step and the grid point x' are those of ``directional_check`` (entries
    :math:`\pm k/8`, k in 4..7; h a power of two near ``central_difference_step``, raised for
    large logits; ValueError where no informative step exists). Calls: ``forward(x)`` once
    (its output gives the weights w, its cache the backward), then per direction one
    backward and two forward calls, on (N, D) arrays. Of several directions, the failing one
    with the largest error-to-tolerance ratio at its worst entry is returned, else the
    passing one with the largest ratio.

    ``accumulate``: the half-precision accumulation model the tolerances assume.
    """
    plan = _plan(forward, backward, x, directions, seed)
    impl, x, count = plan.impl, plan.x, len(plan.draws)
    first = scratch_forward(impl, x.copy())
    w, cache = _weights(first.y), first.cache
    results, forward_calls = [], 1
    for k, eighths in enumerate(plan.draws):
        state = (plan.h, plan.largest, w, cache)
        result, cache, calls = _one_direction(
            impl, x, eighths, state, accumulate, last=k + 1 == count
        )
        forward_calls += calls
        results.append(result)
    return _worst([replace(r, forward_calls=forward_calls, backward_calls=count) for r in results])
