"""Unit tests of ``softmax_verify.tolerances``: the numbers every tolerance comes from.

Expected values are written out from the formulas in the module's docstrings,
independently of the code under test.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from softmax_verify.strategies import DTYPES
from softmax_verify.tolerances import (
    backward_error_bound,
    central_difference_step,
    dot_rounding,
    forward_error_bound,
    forward_relative_bound,
    gamma,
    reference_backward_bound,
    reference_forward_bound,
    row_sum_bound,
    unit_interval_slack,
    unit_roundoff,
)

BY_DTYPE = pytest.mark.parametrize("dtype", DTYPES, ids=str)
U = {np.dtype(np.float32): 2.0**-24, np.dtype(np.float64): 2.0**-53}
LAMBDA = {np.dtype(np.float32): 2.0**-126, np.dtype(np.float64): 2.0**-1022}
SIGMA = {np.dtype(np.float32): 2.0**-149, np.dtype(np.float64): 2.0**-1074}


def _gamma(n: float, u: float) -> float:
    return n * u / (1 - n * u)


# --- unit roundoff and gamma --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dtype", "expected"),
    [
        (np.float32, 2.0**-24),
        (np.dtype(np.float32), 2.0**-24),
        ("float32", 2.0**-24),
        (np.float64, 2.0**-53),
        ("f8", 2.0**-53),
        (float, 2.0**-53),
    ],
    ids=repr,
)
def test_unit_roundoff(dtype: Any, expected: float) -> None:
    assert unit_roundoff(dtype) == expected


def test_unit_interval_slack_is_two_unit_roundoffs() -> None:
    assert unit_interval_slack(np.float32) == 2.0**-23
    assert unit_interval_slack(np.float64) == 2.0**-52
    # 1 + 2u is the float just above 1: one ulp.
    assert np.float32(1 + unit_interval_slack(np.float32)) == np.nextafter(
        np.float32(1), np.float32(2)
    )


@BY_DTYPE
def test_gamma_values(dtype: np.dtype[Any]) -> None:
    u = U[dtype]
    assert float(gamma(0, dtype)) == 0.0
    for n in (1, 2, 10, 74.5, 1e3):
        assert float(gamma(n, dtype)) == pytest.approx(_gamma(n, u), rel=1e-12)
        assert float(gamma(n, dtype)) >= n * u  # never below n roundings of u each
    values = gamma(np.array([1.0, 2.0, 3.0]), dtype)
    assert values.shape == (3,)
    assert values.dtype == np.float64


@BY_DTYPE
@given(a=st.floats(0, 1e20), b=st.floats(0, 1e20))
def test_gamma_is_monotone(dtype: np.dtype[Any], a: float, b: float) -> None:
    low, high = sorted((a, b))
    assert gamma(low, dtype) <= gamma(high, dtype)


@BY_DTYPE
def test_gamma_is_infinite_once_nu_reaches_one(dtype: np.dtype[Any]) -> None:
    u = U[dtype]
    assert gamma(1 / u, dtype) == np.inf  # nu = 1 exactly
    assert gamma(2 / u, dtype) == np.inf
    assert gamma(np.inf, dtype) == np.inf
    below = gamma(0.5 / u, dtype)  # nu = 1/2: gamma = 1
    assert float(below) == 1.0
    almost = gamma(np.nextafter(1 / u, 0), dtype)
    assert np.isfinite(almost)
    assert almost > 1e6
    mixed = gamma(np.array([1.0, 1 / u, 3 / u]), dtype)
    np.testing.assert_array_equal(np.isinf(mixed), [False, True, True])


# --- forward bounds -----------------------------------------------------------------------------


@BY_DTYPE
def test_forward_relative_bound_is_gamma_of_the_documented_count(dtype: np.dtype[Any]) -> None:
    x = np.array([[0.0, -1.0, -30.0, -1000.0], [5.0, 5.0, 5.0, 5.0]], dtype=dtype)
    eta = forward_relative_bound(x, dtype)
    t = np.array([[0.0, 1.0, 30.0, 1000.0], [0.0, 0.0, 0.0, 0.0]])
    expected = np.vectorize(lambda ti: _gamma(4 + 10 + math.log(4) + ti, U[dtype]))(t)
    np.testing.assert_allclose(eta, expected, rtol=1e-12)
    # Larger t, larger bound.
    assert (np.diff(eta[0]) > 0).all()


@BY_DTYPE
def test_forward_relative_bound_is_zero_where_t_u_reaches_one_half(dtype: np.dtype[Any]) -> None:
    half = 0.5 / U[dtype]  # t with t u = 1/2: 2**23 in float32, 2**52 in float64
    x = np.array([[0.0, -half, -2 * half, -1.0]], dtype=dtype)
    eta = forward_relative_bound(x, dtype)
    np.testing.assert_array_equal(eta[0, 1:3], 0.0)  # e^-t is 0 in every dtype there
    assert eta[0, 0] > 0
    assert eta[0, 3] > 0
    assert (eta < 1).all()


def test_forward_relative_bound_is_zero_where_the_shift_overflows() -> None:
    big = float(np.finfo(np.float64).max)
    x = np.array([[big, -big, 0.0]])  # max - x overflows to inf for the second entry
    with np.errstate(all="raise"):
        eta = forward_relative_bound(x, np.float64)
    assert eta[0, 1] == 0.0
    assert 0 < eta[0, 0] < 1e-14


@BY_DTYPE
@pytest.mark.parametrize("moved", [0.0, 2.0**-10])
def test_eta_times_bounds_eta_y_and_is_tight(dtype: np.dtype[Any], moved: float) -> None:
    """``_eta_times`` (the directional check's per-block bound) is at least
    ``forward_relative_bound * y`` everywhere; equal to it on rows whose logits span more
    than 1/(2u), where it defers to it; within a factor 1 + 2 nu* (+ 8 eps) on the other
    rows, nu* = (K + max t) u, with t < 40 here."""
    from softmax_verify.tolerances import _eta_times

    rng = np.random.default_rng(5)
    x = rng.standard_normal((6, 50)) * 4
    x[1, 7] = -5e7 if dtype == np.float32 else -5e15  # nu* >= 1/2: the exact function
    x[2, 3] = 1e30  # every other entry of the row has eta = 0
    x[3, :] = 0.0  # a constant row
    y = rng.random(x.shape)
    exact = forward_relative_bound(x, dtype, moved=moved) * y
    bound = _eta_times(x, y, dtype, moved)
    assert np.all(bound >= exact)
    ordinary = [0, 3, 4, 5]
    # Looser by at most 1 + 2 nu* (+ 8 eps): nu* = (K + max t) u is about 1e-5 here in float32.
    nu_star = (x.shape[1] + 10 + math.log(x.shape[1]) + 2 * moved + 40) * U[np.dtype(dtype)]
    rtol = 2 * nu_star + 8 * 2.0**-52
    np.testing.assert_allclose(bound[ordinary], exact[ordinary], rtol=rtol, atol=0)
    np.testing.assert_array_equal(bound[[1, 2]], exact[[1, 2]])


@BY_DTYPE
def test_forward_error_bound_is_eta_y_plus_lambda(dtype: np.dtype[Any]) -> None:
    x = np.array([[0.0, -1.0, -200.0]], dtype=dtype)
    y = np.array([[0.73, 0.27, 0.0]])
    eta = forward_relative_bound(x, dtype)
    bound = forward_error_bound(x, y, dtype)
    np.testing.assert_allclose(bound, eta * y + LAMBDA[dtype], rtol=1e-15)
    assert bound[0, 2] == LAMBDA[dtype]  # only the underflow term for a zero probability
    both = reference_forward_bound(x, y, dtype)
    np.testing.assert_allclose(both, bound + forward_error_bound(x, y, np.float64), rtol=1e-15)


@pytest.mark.parametrize(
    ("d", "dtype", "expected"),
    [
        # gamma_{D + 10 + 2 ln D}(dtype) + D lambda + gamma_D(float64), written out:
        (1, np.float32, _gamma(11, 2.0**-24) + 2.0**-126 + _gamma(1, 2.0**-53)),
        (1, np.float64, _gamma(11, 2.0**-53) + 2.0**-1022 + _gamma(1, 2.0**-53)),
        (
            64,
            np.float32,
            _gamma(74 + 2 * math.log(64), 2.0**-24) + 64 * 2.0**-126 + _gamma(64, 2.0**-53),
        ),
        (
            64,
            np.float64,
            _gamma(74 + 2 * math.log(64), 2.0**-53) + 64 * 2.0**-1022 + _gamma(64, 2.0**-53),
        ),
    ],
    ids=["1-float32", "1-float64", "64-float32", "64-float64"],
)
def test_row_sum_bound_values(d: int, dtype: Any, expected: float) -> None:
    assert row_sum_bound(d, dtype) == pytest.approx(expected, rel=1e-12)


def test_row_sum_bound_magnitudes() -> None:
    assert 6.5e-7 < row_sum_bound(1, np.float32) < 6.6e-7  # 11 u
    assert 4.9e-6 < row_sum_bound(64, np.float32) < 5.0e-6  # 82.3 u
    assert 1.6e-14 < row_sum_bound(64, np.float64) < 1.7e-14  # (82.3 + 64) u
    assert row_sum_bound(64, np.float64) < row_sum_bound(65, np.float64)


# --- backward bounds ----------------------------------------------------------------------------


@BY_DTYPE
def test_backward_error_bound_formula(dtype: np.dtype[Any]) -> None:
    x = np.array([[0.0, -1.0, -2.0]], dtype=dtype)
    e = np.exp(-np.array([0.0, 1.0, 2.0]))
    y = (e / e.sum())[None]
    g = np.array([[1.0, -3.0, 0.5]])
    eta = forward_relative_bound(x, dtype)
    p = (np.abs(g) * y).sum()
    q = (np.abs(g) * y * eta).sum()
    expected = (
        y * ((eta + _gamma(3 + 4, U[dtype])) * (np.abs(g) + p) + q)
        + LAMBDA[dtype] * 3.0
        + (3 + 4) * LAMBDA[dtype]  # flush-to-zero allowance
    )
    np.testing.assert_allclose(backward_error_bound(x, y, g, dtype), expected, rtol=1e-12)
    both = reference_backward_bound(x, y, g, dtype)
    extra = backward_error_bound(x, y, g, np.float64)
    np.testing.assert_allclose(both, expected + extra, rtol=1e-12)


@BY_DTYPE
def test_backward_error_bound_for_zero_upstream_is_only_flush_to_zero_slack(
    dtype: np.dtype[Any],
) -> None:
    # With g = 0 every relative term vanishes; what remains is (D + 4) * lambda, the
    # allowance for D + 4 roundings flushed to zero (FTZ/DAZ) below the normal range.
    x = np.zeros((2, 5), dtype=dtype)
    y = np.full((2, 5), 0.2)
    bound = backward_error_bound(x, y, np.zeros((2, 5)), dtype)
    np.testing.assert_array_equal(bound, (5 + 4) * LAMBDA[dtype])


def test_dot_rounding() -> None:
    abs_dot = np.array([1.0, 0.0, 1e300])
    expected = _gamma(8, 2.0**-53) * abs_dot + 8 * 2.0**-1074
    np.testing.assert_allclose(dot_rounding(8, abs_dot), expected, rtol=1e-15)
    assert dot_rounding(8, np.array([0.0]))[0] > 0  # products can land in the subnormals


# --- central differences ------------------------------------------------------------------------


@BY_DTYPE
@pytest.mark.parametrize("d", [1, 8, 64, 1000])
def test_central_difference_step_formula(dtype: np.dtype[Any], d: int) -> None:
    expected = (24 * (d + 10) * U[dtype]) ** (1 / 3)
    assert central_difference_step(d, dtype) == pytest.approx(expected, rel=1e-12)


def test_central_difference_step_scales_with_the_cube_root() -> None:
    # Of the unit roundoff: float32 / float64 = (2**29)**(1/3).
    for d in (1, 64, 500):
        ratio = central_difference_step(d, np.float32) / central_difference_step(d, np.float64)
        assert ratio == pytest.approx(2 ** (29 / 3), rel=1e-12)
    # Of the row length + 10: h(8 (d + 10) - 10) = 2 h(d).
    for dtype in DTYPES:
        assert central_difference_step(8 * 74 - 10, dtype) == pytest.approx(
            2 * central_difference_step(64, dtype), rel=1e-12
        )
    # The docstring's numbers at D = 64: about 5e-5 (float64) and 0.05 (float32).
    assert 4e-5 < central_difference_step(64, np.float64) < 7e-5
    assert 0.04 < central_difference_step(64, np.float32) < 0.06


# --- dtype validation ---------------------------------------------------------------------------

X2 = np.zeros((1, 3))
Y2 = np.full((1, 3), 1 / 3)
DTYPE_CALLS: list[tuple[str, Callable[[Any], object]]] = [
    ("unit_roundoff", lambda t: unit_roundoff(t)),
    ("gamma", lambda t: gamma(3, t)),
    ("forward_relative_bound", lambda t: forward_relative_bound(X2, t)),
    ("forward_error_bound", lambda t: forward_error_bound(X2, Y2, t)),
    ("reference_forward_bound", lambda t: reference_forward_bound(X2, Y2, t)),
    ("row_sum_bound", lambda t: row_sum_bound(3, t)),
    ("unit_interval_slack", lambda t: unit_interval_slack(t)),
    ("backward_error_bound", lambda t: backward_error_bound(X2, Y2, X2, t)),
    ("reference_backward_bound", lambda t: reference_backward_bound(X2, Y2, X2, t)),
    ("central_difference_step", lambda t: central_difference_step(3, t)),
]


@pytest.mark.parametrize("call", [c for _, c in DTYPE_CALLS], ids=[i for i, _ in DTYPE_CALLS])
@pytest.mark.parametrize(
    "bad",
    [np.int16, np.int32, "int64", bool, np.complex128, None, "not a dtype", object, 3.5],
    ids=repr,
)
def test_invalid_dtype_raises_type_error_naming_dtype(
    call: Callable[[Any], object], bad: object
) -> None:
    with pytest.raises(TypeError, match=r"^dtype\b"):
        call(bad)
