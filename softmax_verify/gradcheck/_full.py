"""``full_jacobian_check``: every entry of every row's Jacobian, numerical against analytic."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from softmax_verify.core.implementation import Implementation
from softmax_verify.core.options import Accumulation
from softmax_verify.core.oracle import F64
from softmax_verify.core.oracle import f64 as _f64
from softmax_verify.core.oracle import softmax as _exact
from softmax_verify.core.validate import CHECKED_DTYPES, as_float_array, check_same_shape
from softmax_verify.gradcheck._arguments import implementation, point
from softmax_verify.gradcheck._finite_differences import (
    column_chunks,
    column_differences,
    power_of_two,
    steps,
)
from softmax_verify.gradcheck._scratch import scratch_backward, scratch_forward
from softmax_verify.gradcheck._tally import GradcheckResult, _jacobian_order, _result, _Tally
from softmax_verify.tolerances import (
    backward_error_bound,
    central_difference_step,
    difference_rounding,
    forward_relative_bound,
    jacobian_backward_bound,
    jacobian_difference_bound,
    projected_difference_bound,
)

__all__ = ["full_jacobian_check"]


def _analytic_jacobian(impl: Implementation, x: NDArray[Any]) -> tuple[F64, int]:
    """``J[i, r, j] = backward(e_i)[r, j]`` (D, N, D), and the number of stacked calls.

    The D basis upstreams go to the backward in stacks, with the cache of the forward of
    as many stacked copies of x (rows are independent). Both stacks are scratch.
    """
    n, d = x.shape
    analytic = np.empty((d, n, d))
    chunks = column_chunks(n, d, 1)
    for start, stop in chunks:
        c = stop - start
        copies = np.empty((c, n, d), dtype=x.dtype)
        copies[:] = x
        basis = np.zeros((c, n, d), dtype=x.dtype)
        basis[np.arange(c), :, np.arange(start, stop)] = 1
        cache = scratch_forward(impl, copies.reshape(c * n, d)).cache
        dx = scratch_backward(impl, basis.reshape(c * n, d), cache, watch_cache=False).dx
        analytic[start:stop] = dx.reshape(c, n, d)
    return analytic, len(chunks)


def full_jacobian_check(
    forward: Callable[..., Any] | Implementation,
    backward: Callable[..., Any] | None,
    x: NDArray[Any],
    *,
    dout: NDArray[Any] | None = None,
    accumulate: Accumulation = "float32",
) -> GradcheckResult:
    r"""Every Jacobian entry :math:`\partial y_{ri}/\partial x_{rj}`, numerical vs analytic.

    Numerical: column j of every row perturbed at once, 2D perturbed copies of x, passed
    to the forward in stacks (a few calls; see ``column_differences``). Analytic: row i
    of J is ``backward(e_i)`` for the basis upstream e_i (see ``_analytic_jacobian``).
    Tolerance per entry: ``tolerances.jacobian_difference_bound`` (the numerical part
    :math:`T_{ij}`) + ``tolerances.jacobian_backward_bound`` (the backward's bound for
    :math:`g = e_i`), with :math:`\eta` taken at the farthest perturbed point.

    With ``dout`` given, ``backward(dout)`` (after ``forward(x)``) is also compared with
    :math:`N^\top dout`, within ``tolerances.projected_difference_bound`` + the backward
    bound for g = dout; the worse result is returned.

    ``accumulate``: the half-precision accumulation model the tolerances assume.
    """
    impl = implementation(forward, backward)
    x = point(x, "x")
    g = None if dout is None else _upstream(dout, x)
    n, d = x.shape
    moves = steps(x, power_of_two(central_difference_step(d, x.dtype)))
    analytic, stacks = _analytic_jacobian(impl, x)
    y = _exact(x)
    eta = forward_relative_bound(x, x.dtype, moved=moves.largest, accumulate=accumulate)
    rounding = difference_rounding(  # [r, i]
        eta, y, moves.largest, x.dtype, accumulate=accumulate
    )
    truncation = moves.truncation()  # [r, j]
    # Compared column chunk by column chunk in the layout [j, r, i] = dy_ri/dx_rj.
    by_column = analytic.transpose(2, 1, 0)
    tally = _Tally("Jacobian dy_i/dx_j vs central differences", (d, n, d))
    vjp_num, vjp_tol = np.zeros((n, d)), np.zeros((n, d))
    forward_calls = stacks
    for start, stop, diff in column_differences(impl, x, moves):
        forward_calls += 1
        cols = slice(start, stop)
        width = moves.width[:, cols].T[:, :, None]  # (c, N, 1)
        numerical = diff / width
        part = jacobian_difference_bound(
            numerical, width, rounding, truncation[:, cols].T[:, :, None]
        )
        tally.add(
            numerical,
            by_column[cols],
            part + jacobian_backward_bound(y, eta, start, stop, x.dtype, accumulate=accumulate),
            start,
        )
        if g is not None:
            vjp_num[:, cols] = np.einsum("ri,kri->rk", _f64(g), numerical)
            vjp_tol[:, cols] = projected_difference_bound(np.abs(_f64(g)), part, numerical)
    result = _jacobian_order(tally.result(forward_calls, stacks))
    if g is None:
        return result
    vjp_tol += backward_error_bound(x, y, g, x.dtype, accumulate=accumulate)
    calls = (forward_calls + 1, stacks + 1)
    vjp = _result(vjp_num, impl.vjp(x, g), vjp_tol, "backward(dout) vs J^T dout", calls)
    return vjp if (not vjp.passed and result.passed) else result


def _upstream(dout: NDArray[Any], x: NDArray[Any]) -> NDArray[Any]:
    g = as_float_array(dout, "dout", dtypes=CHECKED_DTYPES)
    check_same_shape(g, "dout", x, "x")
    return g
