r"""Accuracy of the reference against an arbitrary-precision oracle (mpmath, 50 digits).

Every check compares the float32/float64 result with the exact value computed by
mpmath from the same (exactly representable) inputs, and asserts a bound that is
either taken from ``softmax_verify.tolerances`` or derived in a comment next to
the assertion. Errors are measured in mpmath too (``|mpf(y_hat) - y|``, rounded
once to float64), so the oracle's own rounding to float64 does not enter them.

Inputs come from ``strategies.logits`` on small shapes (at most 4 x 8, to keep
mpmath fast): ties, constant rows, dominant entries, masked entries, rows far
apart and magnitudes up to the dtype's largest finite value.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import mpmath
import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from mp_oracle import (
    BY_DTYPE,
    DPS,
    SMALL,
    FloatArray,
    MpRows,
    assert_within,
    errors,
    exact_log_softmax,
    exact_shift_and_lse,
    exact_softmax,
    exact_vjp,
    mp_rows,
    to_float64,
)

from softmax_verify.bundled.reference import (
    log_softmax,
    log_softmax_backward,
    softmax,
    softmax_backward,
    softmax_jvp,
)
from softmax_verify.strategies import directions, logits, upstreams
from softmax_verify.tolerances import (
    backward_error_bound,
    forward_error_bound,
    gamma,
    row_sum_bound,
    unit_interval_slack,
)

# --- the oracle -------------------------------------------------------------------------------


@st.composite
def _logits_and(
    draw: st.DrawFn,
    dtype: np.dtype[Any],
    second: Callable[[tuple[int, int], np.dtype[Any]], st.SearchStrategy[FloatArray]],
) -> tuple[FloatArray, FloatArray]:
    """Small logits plus a second array of the same shape (an upstream or a direction)."""
    x = draw(logits(dtype, shape=SMALL))
    shape = (int(x.shape[0]), int(x.shape[1]))
    return x, draw(second(shape, dtype))


def _upstreams(shape: tuple[int, int], dtype: np.dtype[Any]) -> st.SearchStrategy[FloatArray]:
    return upstreams(shape, dtype)


def _directions(shape: tuple[int, int], dtype: np.dtype[Any]) -> st.SearchStrategy[FloatArray]:
    return directions(shape, dtype)


# --- softmax ----------------------------------------------------------------------------------


@BY_DTYPE
@given(data=st.data())
def test_softmax_within_forward_error_bound(dtype: np.dtype[Any], data: st.DataObject) -> None:
    x = data.draw(logits(dtype, shape=SMALL), label="x")
    y_hat = softmax(x)
    exact = exact_softmax(x)
    bound = forward_error_bound(x, to_float64(exact), dtype)
    assert_within(errors(y_hat, exact), bound, "softmax", x)


EDGE_ROWS: list[list[float]] = [
    [0.0, 0.0, 0.0, 0.0],  # exact ties: uniform
    [3.0, 3.0, -1.0, 3.0],  # tie at the maximum
    [1e300, 1e300 - 1e285, -1e300, 0.0],  # near-overflow float64 magnitudes
    [-1e300, -1e300, -1e300, -1e300],  # constant row of huge magnitude
    [700.0, 0.0, -700.0, -745.0],  # probabilities into the subnormal range
    [1e-310, -1e-310, 5e-324, 0.0],  # subnormal logits: uniform to within ulps
]


@BY_DTYPE
def test_softmax_within_forward_error_bound_on_edge_rows(dtype: np.dtype[Any]) -> None:
    finfo = np.finfo(dtype)
    rows = np.clip(np.array(EDGE_ROWS), -float(finfo.max), float(finfo.max))
    # Rows far apart: one array holds rows whose maxima differ by ~1e300 (float64) / 1e38.
    x = np.vstack([rows, [[float(finfo.max), 0.0, float(-finfo.max), 1.0]]]).astype(dtype)
    y_hat = softmax(x)
    exact = exact_softmax(x)
    bound = forward_error_bound(x, to_float64(exact), dtype)
    assert_within(errors(y_hat, exact), bound, "softmax on edge rows", x)


@BY_DTYPE
@given(data=st.data())
def test_softmax_finite_and_rows_sum_to_one_up_to_dtype_max(
    dtype: np.dtype[Any], data: st.DataObject
) -> None:
    # Default shapes (up to 24 x 64) and magnitudes up to finfo(dtype).max; no oracle needed.
    x = data.draw(logits(dtype), label="x")
    y = softmax(x)
    assert y.dtype == dtype
    assert np.isfinite(y).all()
    assert (y >= 0).all()
    assert (y <= 1 + unit_interval_slack(dtype)).all()
    sums = y.astype(np.float64).sum(axis=1)
    assert np.all(np.abs(sums - 1.0) <= row_sum_bound(x.shape[1], dtype)), sums


# --- softmax backward and JVP -----------------------------------------------------------------


@BY_DTYPE
@given(data=st.data())
def test_softmax_backward_within_backward_error_bound(
    dtype: np.dtype[Any], data: st.DataObject
) -> None:
    x, dout = data.draw(_logits_and(dtype, _upstreams), label="x, dout")
    # The whole pipeline in dtype: y_hat = softmax(x), then the VJP at y_hat;
    # backward_error_bound accounts for the forward's error in y_hat.
    dx_hat = softmax_backward(dout, softmax(x))
    exact_y = exact_softmax(x)
    bound = backward_error_bound(x, to_float64(exact_y), dout, dtype)
    assert_within(errors(dx_hat, exact_vjp(exact_y, dout)), bound, "softmax_backward", x)


@BY_DTYPE
@given(data=st.data())
def test_softmax_jvp_within_backward_error_bound(dtype: np.dtype[Any], data: st.DataObject) -> None:
    x, tangent = data.draw(_logits_and(dtype, _directions), label="x, tangent")
    jt_hat = softmax_jvp(tangent, softmax(x))
    exact_y = exact_softmax(x)
    # J is symmetric, so J t = y * (t - <t, y>) is the VJP formula with dout := t, and the
    # JVP performs exactly the same floating-point operations: the same bound applies.
    bound = backward_error_bound(x, to_float64(exact_y), tangent, dtype)
    assert_within(errors(jt_hat, exact_vjp(exact_y, tangent)), bound, "softmax_jvp", x)


# --- log-softmax ------------------------------------------------------------------------------
#
# log_softmax computes z_i = fl(s_i - fl(log S)), s_i = fl(x_i - m), S = sum_j fl(exp(s_j)).
# With t_i = m - x_i >= 0, l = log sum_j exp(x_j - m) in [0, ln D] and the budget of
# softmax_verify.tolerances (exp within 2 ulps = 4u, log within 4 ulps = 8u relative):
#   shift        |s_i - (x_i - m)| <= u t_i
#   sum          S_hat = S (1 + e_S), |e_S| <= gamma_{D-1} + 4u + u sum_j y_j t_j
#                <= gamma_{D+3+ln D} (sum_j y_j t_j <= H(y) <= ln D, as in tolerances),
#                plus D lambda absolute for terms that underflow (relative, since S >= 1)
#   log          |log(S_hat) - l| <= |e_S| / (1 - |e_S|) + D lambda, then the log's own 8u l
#   subtraction  one rounding of a value of size t_i + l: u (t_i + l)
# Total: 2u t_i + 9u l + gamma_{D+3+ln D} (1 + O(u)) + D lambda, and since
# gamma_{D+10+ln D} >= 11u covers 2u and 9u, and exceeds gamma_{D+3+ln D} by >= 7u
# (which absorbs the second-order terms and D lambda):
#
#   |z_hat_i - z_i| <= gamma_{D+10+ln D} * (1 + t_i + l)
#
# The constant term is needed: x = (0, -50) has l = 2e-22, but S = 1 + 2e-22 rounds to 1
# and z_0 comes out as 0, an absolute error of 2e-22 far above gamma * (t_0 + l) = 2e-37.
# Where x_i - m itself overflows, z_hat_i = -inf; that is correct when |z_i| > finfo.max.


def _log_softmax_bounds(x: FloatArray, dtype: np.dtype[Any]) -> MpRows:
    d = x.shape[1]
    g = mpmath.mpf(float(gamma(d + 10 + math.log(d), dtype)))
    shifts, lses = exact_shift_and_lse(x)
    with mpmath.workdps(DPS):
        return [[g * (1 + t + lse) for t in trow] for trow, lse in zip(shifts, lses, strict=True)]


def _check_log_softmax(z_hat: FloatArray, x: FloatArray, dtype: np.dtype[Any]) -> None:
    exact = exact_log_softmax(x)
    bounds = _log_softmax_bounds(x, dtype)
    big = float(np.finfo(dtype).max)
    with mpmath.workdps(DPS):
        for i, (zrow, erow, brow) in enumerate(zip(np.asarray(z_hat), exact, bounds, strict=True)):
            for j, (z, e, b) in enumerate(zip(zrow, erow, brow, strict=True)):
                if z == -np.inf:
                    assert abs(e) > big, f"log_softmax overflowed at {(i, j)} for x = {x[i]!r}"
                else:
                    err = abs(mpmath.mpf(float(z)) - e)
                    assert err <= b, (
                        f"log_softmax error {float(err)!r} > bound {float(b)!r} at {(i, j)}; "
                        f"x row = {x[i]!r}"
                    )


@BY_DTYPE
@given(data=st.data())
def test_log_softmax_within_derived_bound(dtype: np.dtype[Any], data: st.DataObject) -> None:
    x = data.draw(logits(dtype, shape=SMALL), label="x")
    z_hat = log_softmax(x)
    assert z_hat.dtype == dtype
    assert not np.isnan(z_hat).any()
    assert (z_hat <= 0).all()
    _check_log_softmax(z_hat, x, dtype)


@BY_DTYPE
def test_log_softmax_bound_needs_its_absolute_term(dtype: np.dtype[Any]) -> None:
    x = np.array([[0.0, -50.0]], dtype=dtype)
    z_hat = log_softmax(x)
    exact = exact_log_softmax(x)
    err = float(abs(mpmath.mpf(float(z_hat[0, 0])) - exact[0][0]))
    # log(1 + e^-50) = 1.9e-22 is lost when 1 + e^-50 rounds to 1: this error is allowed,
    # yet it exceeds a purely relative bound gamma * (t_0 + l) = gamma * 1.9e-22.
    assert err > float(gamma(2 + 10 + math.log(2), dtype)) * 1.9e-22
    _check_log_softmax(z_hat, x, dtype)


# log_softmax_backward computes dx_i = fl(g_i - fl(e_i * G)), e_i = fl(exp(z_hat_i)),
# G = fl(sum_j g_j); exactly, dx_i = g_i - y_i sum_j g_j with y_i = exp(z_i).
# With E_i the log-softmax bound above (|z_hat_i - z_i| <= E_i) and A_i = y_i sum_j |g_j|:
#   exp(z_hat_i) = y_i e^delta, |delta| <= E_i, so it is within y_i expm1(E_i) of y_i
#   exp rounding 4u (or < lambda absolute where it underflows), sum gamma_{D-1} sum |g|,
#   product u (or sigma / 2 absolute in the subnormal range), subtraction u
# so |e_i G - y_i G| <= A_i ((1 + expm1 E_i)(1 + gamma_{D+4}) - 1) + lambda sum|g| (1 + gamma_D)
# + sigma / 2, and after the subtraction's rounding (factor 1 + u, plus u |dx_i|):
#
#   |dx_hat_i - dx_i| <= A_i (expm1(E_i) + gamma_{D+5} (1 + expm1(E_i)))
#                        + gamma_1 |dx_i| + 2 lambda sum_j |g_j| + sigma


@BY_DTYPE
@given(data=st.data())
def test_log_softmax_backward_within_derived_bound(
    dtype: np.dtype[Any], data: st.DataObject
) -> None:
    x, dout = data.draw(_logits_and(dtype, _upstreams), label="x, dout")
    dx_hat = log_softmax_backward(dout, log_softmax(x))
    d = x.shape[1]
    finfo = np.finfo(dtype)
    gamma_d5 = mpmath.mpf(float(gamma(d + 5, dtype)))
    gamma_1 = mpmath.mpf(float(gamma(1, dtype)))
    lam = mpmath.mpf(float(finfo.smallest_normal))
    sigma = mpmath.mpf(float(finfo.smallest_subnormal))
    exact_y = exact_softmax(x)
    log_bounds = _log_softmax_bounds(x, dtype)
    with mpmath.workdps(DPS):
        for i, (yrow, grow, erow) in enumerate(
            zip(exact_y, mp_rows(dout), log_bounds, strict=True)
        ):
            total = mpmath.fsum(grow)
            abs_total = mpmath.fsum(abs(gj) for gj in grow)
            for j, (yi, gi, ei) in enumerate(zip(yrow, grow, erow, strict=True)):
                dx = gi - yi * total
                grow_factor = mpmath.expm1(ei)
                a = yi * abs_total
                bound = (
                    a * (grow_factor + gamma_d5 * (1 + grow_factor))
                    + gamma_1 * abs(dx)
                    + 2 * lam * abs_total
                    + sigma
                )
                err = abs(mpmath.mpf(float(dx_hat[i, j])) - dx)
                assert err <= bound, (
                    f"log_softmax_backward error {float(err)!r} > bound {float(bound)!r} at "
                    f"{(i, j)}; x row = {x[i]!r}, dout row = {dout[i]!r}"
                )
