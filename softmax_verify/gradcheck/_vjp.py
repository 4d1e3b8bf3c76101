"""``numerical_vjp_check``: the VJP against central differences, entry by entry."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from softmax_verify.core.options import Accumulation
from softmax_verify.core.oracle import f64 as _f64
from softmax_verify.core.oracle import softmax as _exact
from softmax_verify.core.validate import CHECKED_DTYPES, as_float_array, check_same_shape
from softmax_verify.gradcheck._arguments import implementation, point
from softmax_verify.gradcheck._finite_differences import column_differences, power_of_two, steps
from softmax_verify.gradcheck._tally import GradcheckResult, _result
from softmax_verify.tolerances import (
    _backward_bound,
    central_difference_step,
    difference_rounding,
    forward_relative_bound,
    vjp_difference_bound,
)

__all__ = ["numerical_vjp_check"]


def numerical_vjp_check(
    forward: Any,
    x: NDArray[Any],
    dout: NDArray[Any],
    backward: Any = None,
    *,
    accumulate: Accumulation = "float32",
) -> GradcheckResult:
    r"""``backward(dout)`` against central differences of :math:`L = \sum dout \odot f(x)`.

    Per entry (r, j), column j of every row moved by :math:`h_\pm` at once (rows are
    independent), the perturbed inputs passed to the forward in stacks of columns (see
    ``column_differences``): a few forward calls rather than 2D. Tolerance:
    ``tolerances.vjp_difference_bound`` (truncation, the forward's bound at both points
    over the step, the float64 estimate's rounding) plus the backward's own bound.
    ``accumulate``: the half-precision accumulation model the tolerances assume.
    """
    impl = implementation(forward, backward)
    x = point(x, "x")
    g = as_float_array(dout, "dout", dtypes=CHECKED_DTYPES)
    check_same_shape(g, "dout", x, "x")
    n, d = x.shape
    g64 = _f64(g)
    absg = np.abs(g64)
    moves = steps(x, power_of_two(central_difference_step(d, x.dtype)))  # may refuse x
    analytic = impl.vjp(x, g)
    y = _exact(x)
    eta = forward_relative_bound(x, x.dtype, moved=moves.largest, accumulate=accumulate)
    numerical, spread = np.empty((n, d)), np.empty((n, d))
    calls = 1
    for start, stop, diff in column_differences(impl, x, moves):
        calls += 1
        numerical[:, start:stop] = np.einsum("ri,kri->rk", g64, diff)
        spread[:, start:stop] = np.einsum("ri,kri->rk", absg, np.abs(diff))
    numerical /= moves.width
    # Per row, sum_i |g_i| (E_i^+ + E_i^-): the same for every column.
    rounding = np.einsum(
        "ri,ri->r",
        absg,
        difference_rounding(eta, y, moves.largest, x.dtype, accumulate=accumulate),
    )
    tol = vjp_difference_bound(moves.truncation(), g64, rounding[:, None], spread, moves.width)
    tol += _backward_bound(y, absg, eta, x.dtype, accumulate=accumulate)
    return _result(numerical, analytic, tol, "backward(dout) vs central differences", (calls, 1))
