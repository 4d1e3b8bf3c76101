r"""Backward invariants of log_softmax: :math:`B(g) = J^\top g = g - y \sum_j g_j`.

:math:`y = e^z` is the softmax. Tolerances: tolerances.log_softmax_backward_bound
(:math:`\tau_i`), sized from the float64 reference.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from softmax_verify.core.compare import assert_within
from softmax_verify.core.implementation import Implementation
from softmax_verify.core.options import Accumulation
from softmax_verify.core.oracle import f64 as _f64
from softmax_verify.core.oracle import log_softmax as exact
from softmax_verify.core.oracle import log_softmax_vjp
from softmax_verify.gradcheck import log_softmax_directional_check
from softmax_verify.gradcheck._finite_differences import column_differences, power_of_two, steps
from softmax_verify.invariants._backward import COORDINATE_COLS, DIRECTIONS, check_linear, seed_of
from softmax_verify.invariants._cases import Case
from softmax_verify.tolerances import (
    LOG_SOFTMAX_SECOND,
    LOG_SOFTMAX_THIRD,
    central_difference_step,
    difference_truncation,
    log_softmax_backward_bound,
    log_softmax_error_bound,
    log_softmax_vjp_difference_bound,
    log_softmax_vjp_perturbation,
    reference_log_softmax_backward_bound,
)

__all__ = ["backward_matches_reference", "central_differences", "linearity_in_upstream"]

F64 = NDArray[np.float64]


def backward_matches_reference(
    impl: Implementation, case: Case, accumulate: Accumulation = "float32"
) -> None:
    r"""The rank-one structure of the VJP: :math:`B(g) = g - \operatorname{softmax}(x) \sum_j g_j`.

    Against the float64 reference; independent of the implementation's own forward.
    Tolerance: :math:`\tau(dtype) + \tau(\text{float64})`.
    """
    x, dout = case["x"], case["dout"]
    z = exact(x)
    assert_within(
        impl.vjp(x, dout),
        log_softmax_vjp(dout, z),
        reference_log_softmax_backward_bound(x, z, dout, x.dtype, accumulate=accumulate),
        invariant="backward_matches_reference",
        what="backward(dout) vs g - softmax(x) * sum(g)",
        message="backward is not g - softmax(x) * sum(g) within the derived error bound",
    )


def central_differences(
    impl: Implementation, case: Case, accumulate: Accumulation = "float32"
) -> None:
    r"""The VJP agrees with central differences of :math:`L = \sum g \odot z(x)`, entry by entry.

    Column j of every row is moved by :math:`h_\pm` (powers of two near
    tolerances.central_difference_step). Along :math:`x_j`,
    :math:`L'' = -S\sigma'`, :math:`L''' = -S\sigma''` with :math:`S = \sum_i g_i`, so the
    truncation error is at most :math:`|S|(\max(h_\pm)^2/(36\sqrt3) + |h_+ - h_-|/8)`.
    Rounding: :math:`2\sum_i |g_i| a_i` (the forward bound at points moved by at most
    :math:`\max h_\pm`) over the width, plus :math:`\gamma_{D+3}` for the float64
    estimate, plus the backward bound :math:`\tau`.

    Rows longer than ``COORDINATE_COLS`` (as for softmax) are checked along ``DIRECTIONS``
    random directions u instead (gradcheck.log_softmax_directional_check): the Jacobian
    :math:`J = I - \mathbf 1 y^\top` is not symmetric, but :math:`\operatorname{diag}(y) J`
    is, so ``backward(w * u)`` must equal :math:`w \odot J u`, entry by entry, with w the
    softmax of the forward's own output at x and :math:`J u` from two forward calls: four
    forward calls instead of 2D. Power and what it gives up are softmax's (its
    central_differences): a backward :math:`B = J^\top + E` escapes only if
    :math:`E \operatorname{diag}(w) u` is within tolerance for both directions; errors that
    show only for special upstreams are left to backward_matches_reference. The directions
    are seeded from x.
    """
    x, dout = case["x"], case["dout"]
    if x.shape[1] > COORDINATE_COLS:
        result = log_softmax_directional_check(
            impl, None, x, directions=DIRECTIONS, seed=seed_of(x), accumulate=accumulate
        )
        result.raise_if_failed("central_differences")
        return
    _coordinate_differences(impl, x, dout, accumulate)


def _coordinate_differences(
    impl: Implementation, x: NDArray[Any], dout: NDArray[Any], accumulate: Accumulation
) -> None:
    """central_differences along every coordinate (its docstring), for rows of at most
    ``COORDINATE_COLS`` columns."""
    n, d = x.shape
    moves = steps(x, power_of_two(central_difference_step(d, x.dtype)))
    analytic = impl.vjp(x, dout)
    g = _f64(dout)
    abs_g = np.abs(g)
    numerical, spread = np.empty((n, d)), np.empty((n, d))
    for start, stop, diff in column_differences(impl, x, moves):
        numerical[:, start:stop] = np.einsum("ri,kri->rk", g, diff)
        spread[:, start:stop] = np.einsum("ri,kri->rk", abs_g, np.abs(diff))
    numerical /= moves.width
    z = exact(x)
    a = log_softmax_error_bound(x, z, x.dtype, moved=moves.largest, accumulate=accumulate)
    rounding = 2 * np.einsum("ri,ri->r", abs_g, a)[:, None]
    truncation = difference_truncation(
        moves.up, moves.down, second=LOG_SOFTMAX_SECOND, third=LOG_SOFTMAX_THIRD
    )
    tol = log_softmax_vjp_difference_bound(truncation, g, rounding, spread, moves.width)
    tol += log_softmax_backward_bound(x, z, dout, x.dtype, accumulate=accumulate)
    assert_within(
        analytic,
        numerical,
        tol,
        invariant="central_differences",
        what="backward(dout) vs central differences",
        message="backward(dout) disagrees with central differences of the forward",
    )


def linearity_in_upstream(
    impl: Implementation, case: Case, accumulate: Accumulation = "float32"
) -> None:
    r""":math:`B(a u + b v) = a B(u) + b B(v)`.

    a, b are powers of two, so forming :math:`w = a u + b v` in the dtype rounds only in
    the addition; its exact error :math:`\delta` (TwoSum) moves :math:`B(w)` by
    :math:`|J^\top\delta|_i \le |\delta_i| + y_i \sum_j |\delta_j|`. Tolerance:
    :math:`\tau(w) + |a|\tau(u) + |b|\tau(v)` plus that, plus :math:`\gamma_2` in float64.
    """
    x = case["x"]
    z = exact(x)
    check_linear(
        impl,
        case,
        lambda g, model: log_softmax_backward_bound(x, z, g, x.dtype, accumulate=model),
        lambda delta: log_softmax_vjp_perturbation(z, delta),
        accumulate=accumulate,
    )
