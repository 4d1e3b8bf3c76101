r"""Backward invariants: properties of ``dx = backward(dout, cache)``.

The softmax Jacobian :math:`J = \operatorname{diag}(y) - y y^\top` is symmetric,
positive semi-definite, and has the all-ones vector in its null space; the
backward :math:`B(g) = J g` must be linear in g. Tolerances are sized from the
float64 reference (tolerances.backward_error_bound: per entry
:math:`y_i[(\eta_i + \gamma_{D+4})(|g_i| + P) + Q]` plus absolute terms for underflow).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from softmax_verify.core.compare import assert_within
from softmax_verify.core.implementation import Implementation
from softmax_verify.core.options import Accumulation
from softmax_verify.core.oracle import f64 as _f64
from softmax_verify.core.oracle import softmax as exact
from softmax_verify.core.oracle import softmax_vjp
from softmax_verify.gradcheck import directional_check, numerical_vjp_check
from softmax_verify.invariants._cases import Case
from softmax_verify.invariants._forward import _two_sum_error
from softmax_verify.tolerances import (
    backward_error_bound,
    combination_rounding,
    dot_rounding,
    reference_backward_bound,
    softmax_vjp_perturbation,
)

__all__ = [
    "backward_matches_reference",
    "central_differences",
    "jacobian_psd",
    "jacobian_symmetry",
    "linearity_in_upstream",
    "ones_upstream_gives_zero",
]

F64 = NDArray[np.float64]

#: Rows longer than this are checked along random directions instead of coordinates:
#: central differences along every coordinate cost 2D forward evaluations of the whole
#: array, O(N D^2) work, about 10^8 entries at 4 x 8192.
COORDINATE_COLS = 64
#: Random directions per long-row case (each costs two forward calls and one backward).
DIRECTIONS = 2


def ones_upstream_gives_zero(
    impl: Implementation, case: Case, accumulate: Accumulation = "float32"
) -> None:
    r""":math:`B(c\mathbf 1) = c\,y \odot (1 - \sum_j y_j) = 0`: the rows of J sum to zero.

    Softmax is shift invariant, so moving every logit together changes nothing
    and the gradient of any all-equal upstream vanishes. The notebook's
    backward returns :math:`y(1 - y)` here. Tolerance: the backward bound with
    exact value 0.
    """
    x, dout = case["x"], case["dout"]
    dx = impl.vjp(x, dout)
    tol = backward_error_bound(x, exact(x), dout, x.dtype, accumulate=accumulate)
    assert_within(
        dx,
        np.zeros(x.shape),
        tol,
        invariant="ones_upstream_gives_zero",
        what="backward(c * ones)",
        message="the gradient of an all-equal upstream is not zero",
    )


def central_differences(
    impl: Implementation, case: Case, accumulate: Accumulation = "float32"
) -> None:
    r"""The VJP agrees with central differences of :math:`L = \sum dout \odot f(x)`, entry by entry.

    :math:`dx_{rj} \approx \sum_i dout_{ri}\,(f(x + h e_j) - f(x - h e_j))_{ri} / 2h`
    for every row r and column j, perturbing column j of all rows at once (rows
    are independent: row_independence), so every Jacobian column enters and
    2D forward calls suffice. The implementation's own forward is differenced,
    so this checks that forward and backward agree. Step and tolerance:
    gradcheck.numerical_vjp_check.

    Rows longer than ``COORDINATE_COLS`` are checked along ``DIRECTIONS`` random
    directions u instead (gradcheck.directional_check): since J is symmetric,
    ``backward(u)`` must equal :math:`J u \approx (f(x + hu) - f(x - hu)) / 2h`
    entry by entry, four forward calls instead of 2D. Power: every entry of dx is still
    compared; a backward :math:`B = J + E` that is linear in its upstream escapes only
    if :math:`E u` is within tolerance for both directions, which for a random u with
    entries of size 1/2 to 7/8 needs E itself below tolerance. What it gives up is the
    case's own upstream: an error that shows only for special upstreams (one-hot,
    constant) is left to backward_matches_reference and ones_upstream_gives_zero,
    which check those at every length. The directions are seeded from x, so a case
    replays identically.
    """
    x, dout = case["x"], case["dout"]
    if x.shape[1] > COORDINATE_COLS:
        result = directional_check(
            impl, None, x, directions=DIRECTIONS, seed=seed_of(x), accumulate=accumulate
        )
    else:
        result = numerical_vjp_check(impl, x, dout, accumulate=accumulate)
    result.raise_if_failed("central_differences")


def seed_of(x: NDArray[Any]) -> int:
    """The random directions' seed for a case: from x's bytes, so a case replays identically."""
    return zlib.crc32(np.ascontiguousarray(x).view(np.uint8).tobytes())


def _row_dot(a: NDArray[Any], b: NDArray[Any]) -> F64:
    out: F64 = (_f64(a) * _f64(b)).sum(axis=1)
    return out


def jacobian_symmetry(
    impl: Implementation, case: Case, accumulate: Accumulation = "float32"
) -> None:
    r""":math:`\langle u, B(v)\rangle = \langle v, B(u)\rangle` per row, since :math:`J = J^\top`.

    Tolerance per row: :math:`\sum_i |u_i| \tau_i(v) + \sum_i |v_i| \tau_i(u)`
    (:math:`\tau` the backward bound) plus tolerances.dot_rounding for the two
    inner products taken here in float64.
    """
    x, u, v = case["x"], case["u"], case["v"]
    back_u, back_v = impl.vjp(x, u), impl.vjp(x, v)
    y = exact(x)
    tol = (
        _row_dot(np.abs(u), backward_error_bound(x, y, v, x.dtype, accumulate=accumulate))
        + _row_dot(np.abs(v), backward_error_bound(x, y, u, x.dtype, accumulate=accumulate))
        + dot_rounding(
            x.shape[1], _row_dot(np.abs(u), np.abs(back_v)) + _row_dot(np.abs(v), np.abs(back_u))
        )
    )
    assert_within(
        _row_dot(u, back_v),
        _row_dot(v, back_u),
        tol,
        invariant="jacobian_symmetry",
        what="<u, B(v)> vs <v, B(u)> per row",
        message="the backward is not the transpose-symmetric Jacobian of softmax",
    )


def jacobian_psd(impl: Implementation, case: Case, accumulate: Accumulation = "float32") -> None:
    r""":math:`\langle v, B(v)\rangle = \operatorname{Var}_y(v) \ge 0` per row: J is PSD.

    A sign error in the backward makes this negative. Tolerance: the quadratic
    form may dip below 0 by :math:`\sum_i |v_i| \tau_i(v)` plus tolerances.dot_rounding.
    """
    x, v = case["x"], case["dout"]
    back_v = impl.vjp(x, v)
    quad = _row_dot(v, back_v)
    bound = backward_error_bound(x, exact(x), v, x.dtype, accumulate=accumulate)
    tol = _row_dot(np.abs(v), bound) + dot_rounding(x.shape[1], _row_dot(np.abs(v), np.abs(back_v)))
    floor = np.where(np.isnan(quad), 1.0, np.maximum(quad, 0.0))
    assert_within(
        quad,
        floor,
        np.where(quad < 0, tol, 0.0),
        invariant="jacobian_psd",
        what="<v, B(v)> per row against >= 0",
        message="the backward's quadratic form <v, B(v)> is negative",
    )


def linearity_in_upstream(
    impl: Implementation, case: Case, accumulate: Accumulation = "float32"
) -> None:
    r""":math:`B(a u + b v) = a B(u) + b B(v)`.

    a, b are powers of two, so the only rounding in forming :math:`w = a u + b v`
    in the dtype is the addition; its exact error :math:`\delta` (TwoSum) moves
    the answer by :math:`|J\delta|_i \le y_i(|\delta_i| + \sum_j y_j|\delta_j|)`.
    Tolerance: :math:`\tau(w) + |a|\tau(u) + |b|\tau(v)` plus that, plus
    :math:`\gamma_2` in float64 for the combination taken here.
    """
    x = case["x"]
    y = exact(x)
    check_linear(
        impl,
        case,
        lambda g, model: backward_error_bound(x, y, g, x.dtype, accumulate=model),
        lambda delta: softmax_vjp_perturbation(y, delta),
        accumulate=accumulate,
    )


def check_linear(
    impl: Implementation,
    case: Case,
    bound: Callable[[NDArray[Any], Accumulation], F64],
    moved: Callable[[F64], F64],
    *,
    accumulate: Accumulation,
) -> None:
    r"""B(a u + b v) against a B(u) + b B(v) for the case's powers of two a, b.

    Tolerance: ``bound(w) + |a| bound(u) + |b| bound(v)`` (the backward's bound for each
    upstream, ``bound(g, accumulate)``), plus ``moved(delta)`` (how far the rounding error
    delta of w = a u + b v, exact by TwoSum, moves B(w)), plus :math:`\gamma_2` for the
    combination taken here.
    """
    x, u, v = case["x"], case["u"], case["v"]
    a, b = float(case["a"]), float(case["b"])
    with np.errstate(over="ignore"):
        w = (a * u + b * v).astype(x.dtype)
    scaled_u, scaled_v = a * _f64(u), b * _f64(v)
    delta = np.abs((_f64(w) - (scaled_u + scaled_v)) - _two_sum_error(scaled_u, scaled_v))
    grad_u, grad_v, grad_w = impl.vjp(x, u), impl.vjp(x, v), impl.vjp(x, w)
    combined_u, combined_v = a * _f64(grad_u), b * _f64(grad_v)
    with np.errstate(invalid="ignore"):  # inf - inf from a wrong backward: NaN, compared as such
        combined = combined_u + combined_v
    tol = (
        bound(w, accumulate)
        + abs(a) * bound(u, accumulate)
        + abs(b) * bound(v, accumulate)
        + moved(delta)
        + combination_rounding(combined_u, combined_v)
    )
    assert_within(
        grad_w,
        combined,
        tol,
        invariant="linearity_in_upstream",
        what="B(a*u + b*v) vs a*B(u) + b*B(v)",
        message="the backward is not linear in its upstream gradient",
    )


def backward_matches_reference(
    impl: Implementation, case: Case, accumulate: Accumulation = "float32"
) -> None:
    r""":math:`\hat{dx}` matches the float64 reference :math:`y \odot (g - \langle g, y\rangle)`.

    Sharper than central_differences (no truncation error), and independent of
    the implementation's own forward. Tolerance: the backward bound plus the
    reference's own.
    """
    x, dout = case["x"], case["dout"]
    y = exact(x)
    expected = softmax_vjp(dout, y)
    assert_within(
        impl.vjp(x, dout),
        expected,
        reference_backward_bound(x, y, dout, x.dtype, accumulate=accumulate),
        invariant="backward_matches_reference",
        what="backward(dout) vs float64 reference",
        message="backward differs from the reference VJP beyond the derived error bound",
    )
