"""Tightness of the probabilistic half-precision bounds (``--accumulate input``), as
tests/tolerances/test_tightness.py does for float32 and float64.

The bounds are written out here from docs/tolerances.md ("input: the probabilistic model"),
independently of ``softmax_verify.tolerances``; float16 code equal to the float64 oracle plus
an error of ``k`` times the bound at one entry (matches_reference) or on one row's sum
(rows_sum_to_one) fails with ``k = 4`` and passes with ``k = 1/2``, at a row length where the
probabilistic bound is the smaller one (256) and at a long row (4096). The rounding of the
mutant to float16 adds at most u_h relative, far below half the bound (which contains Phi,
at least c sqrt(D - 1) u_h).

The backward bound's underflow term (docs/tolerances.md, "The backward bound"), at float16
and bfloat16: on the row a thorough run found (a subnormal probability, an upstream of mixed
signs), the oracle plus 1.25 times the bound at that entry fails and 0.8 times passes; the
correct half-in-half kernel passes there, with an error beyond the former allowance and above
half the bound; a mutant one subnormal step off (float16) or flushed to zero (bfloat16) fails."""

from __future__ import annotations

import importlib
import math
from typing import Any

import half_kernels as h
import numpy as np
import pytest
from conftest import require
from numpy.typing import NDArray

import softmax_verify.core.oracle as oracle
from softmax_verify.core.errors import InvariantViolation
from softmax_verify.invariants import _backward, _forward
from softmax_verify.target.local import LocalImplementation

A = NDArray[Any]
U = 2.0**-11  # float16's unit roundoff
SIGMA = 2.0**-24  # float16's smallest subnormal: the underflow allowance under "input"
U64, LAM64 = 2.0**-53, 2.0**-1022
C = 10.0  # the confidence constant c
FAIL, PASS = 4.0, 0.5
BY_K = pytest.mark.parametrize("k", [FAIL, PASS], ids=["4x-fails", "half-passes"])
BY_D = pytest.mark.parametrize("d", [256, 4096])


def _gamma(n: Any, u: float = U) -> A:
    nu = np.asarray(n, dtype=np.float64) * u
    out: A = nu / (1 - nu)
    return out


def _gamma_tilde(n: float, u: float = U) -> float:
    """min(gamma_n, exp(c sqrt(n) u + n u^2 / (1 - u)) - 1)."""
    likely = math.expm1(C * math.sqrt(n) * u + n * u * u / (1 - u))
    return min(float(_gamma(n, u)) if n * u < 1 else math.inf, likely)


def _phi(d: int, u: float = U) -> float:
    """The row sum's relative error: (1 + gamma~_{D-1})(1 + gamma_{4 + ln D}) - 1."""
    return (1 + _gamma_tilde(d - 1, u)) * (1 + float(_gamma(4 + math.log(d), u))) - 1


def _reference_tolerance(x: A, y: A) -> A:
    """(gamma_{7 + t_i} + Phi)/(1 - Phi) y_i + sigma_h, plus the float64 reference's own bound."""
    x64 = x.astype(np.float64)
    d = x.shape[1]
    t = x64.max(axis=1, keepdims=True) - x64
    phi = _phi(d)
    half = (_gamma(7 + t) + phi) / (1 - phi) * y + SIGMA
    own = _gamma(d + 10 + math.log(d) + t, U64) * y + LAM64
    out: A = half + own
    return out


def _row_sum_tolerance(d: int) -> float:
    """(2(7 + ln D)u + Phi)/(1 - Phi) + D sigma_h + gamma_D in float64."""
    phi = _phi(d)
    return (2 * (7 + math.log(d)) * U + phi) / (1 - phi) + d * SIGMA + float(_gamma(d, U64))


def _x(d: int) -> A:
    rng = np.random.default_rng(d)
    return (rng.standard_normal((3, d)) * 3).astype(np.float16)


def _passes(check: Any, error: A) -> bool:
    """``check`` under "input" on float16 code equal to the oracle plus ``error`` (float64)."""
    x = _x(error.shape[1])

    def forward(xx: A) -> A:
        return (oracle.softmax(xx) + error).astype(np.float16)

    try:
        check(LocalImplementation(forward, None, timeout=None), {"x": x}, "input")
    except InvariantViolation:
        return False
    return True


def _expect(k: float, passed: bool, what: str) -> None:
    if k == FAIL:
        assert not passed, f"{what}: an error of {k}x the derived bound passed"
    else:
        assert passed, f"{what}: an error of {k}x the derived bound failed"


@BY_D
@BY_K
def test_matches_reference_under_input(d: int, k: float) -> None:
    x = _x(d)
    y = oracle.softmax(x)
    error = np.zeros_like(y)
    error[0, 1] = k * _reference_tolerance(x, y)[0, 1]
    _expect(k, _passes(_forward.matches_reference, error), "matches_reference")


@BY_D
@BY_K
def test_rows_sum_to_one_under_input(d: int, k: float) -> None:
    y = oracle.softmax(_x(d))
    error = np.zeros_like(y)
    error[0, 1] = k * _row_sum_tolerance(d)
    _expect(k, _passes(_forward.rows_sum_to_one, error), "rows_sum_to_one")


def test_the_probabilistic_bound_is_the_smaller_from_c_squared_on() -> None:
    """gamma~_n < gamma_n once n > c^2 (and not before): at D = 4096 about 0.37 against the
    worst case, vacuous there (4095 u >= 1): what lets a long-row bug fail under "input"."""
    assert _gamma_tilde(50) == pytest.approx(float(_gamma(50)))
    assert 0.36 < _gamma_tilde(4095) < 0.37
    assert 4095 * U >= 1


# --- the backward bound's underflow term ---------------------------------------------------------
#
# A probability in the subnormal range errs by up to sigma_h (two roundings of sigma_h / 2: the
# exp and the division), and the backward multiplies that error by g_i - <g, y>, up to
# |g_i| + P, more than max|g| when the two have opposite signs. The case: the counterexample
# a thorough run found (seed 1289701048, float16, pairwise kernel, backward_matches_reference),
# one row; y_3 = 5.78 sigma_h, and the correct kernel computes 5 sigma_h.

#: (u, sigma, smallest normal) of float16 and bfloat16.
HALF_UNITS = {"float16": (U, SIGMA, 2.0**-14), "bfloat16": (2.0**-8, 2.0**-133, 2.0**-126)}
#: One row each whose third probability is subnormal, with an upstream of mixed signs: the
#: thorough run's float16 counterexample, and a bfloat16 row of the same structure.
UNDERFLOW_CASES = {
    "float16": ([6.15234375, 4.0234375, -8.6171875], [-42.71875, -35.15625, 59.71875]),
    "bfloat16": ([0.0, 0.0, -89.0], [-44.75, -24.0, 58.75]),
}
BY_HALF = pytest.mark.parametrize("half", list(HALF_UNITS))


def _underflow_case(half: str) -> tuple[A, A]:
    if half == "bfloat16":
        require("ml_dtypes")
    dtype = (
        np.dtype(half)
        if half == "float16"
        else np.dtype(importlib.import_module("ml_dtypes").bfloat16)
    )
    x, g = UNDERFLOW_CASES[half]
    return np.array([x], dtype=dtype), np.array([g], dtype=dtype)


def _backward_tolerance(x: A, g: A, half: str) -> A:
    """tau under "input" (docs/tolerances.md, "The backward bound"), plus the float64
    reference's own: y[(eta + chain(D + 4))(|g| + P) + Q] + sigma(m(|g| + P) + y sum m|g|)
    + (D + 4) sigma, eta = (gamma_{7+t} + Phi)/(1 - Phi), chain(D + 4) = (1 + gamma~_D)
    (1 + gamma_4) - 1, m = 1 where y(1 - eta) < lambda_h + sigma."""
    u, sigma, lam = HALF_UNITS[half]
    x64 = x.astype(np.float64)
    d = x.shape[1]
    y = oracle.softmax(x64)
    t = x64.max(axis=1, keepdims=True) - x64
    phi = _phi(d, u)
    eta = (_gamma(7 + t, u) + phi) / (1 - phi)
    ag = np.abs(g.astype(np.float64))
    p = (ag * y).sum(axis=1, keepdims=True)
    q = (ag * y * eta).sum(axis=1, keepdims=True)
    chain = (1 + _gamma_tilde(d, u)) * (1 + float(_gamma(4, u))) - 1
    low = y * (1 - eta) < lam + sigma
    under = np.where(low, ag + p, 0.0) + y * np.where(low, ag, 0.0).sum(axis=1, keepdims=True)
    half_part = y * ((eta + chain) * (ag + p) + q) + sigma * (under + d + 4)
    eta64 = _gamma(d + 10 + math.log(d) + t, U64)
    own = y * ((eta64 + _gamma(d + 4, U64)) * (ag + p) + (ag * y * eta64).sum(1, keepdims=True))
    out: A = half_part + own + LAM64 * (d + 4)
    return out


def _backward_passes(forward: Any, backward: Any, x: A, g: A) -> bool:
    impl = LocalImplementation(forward, backward, timeout=None)
    try:
        _backward.backward_matches_reference(impl, {"x": x, "dout": g}, "input")
    except InvariantViolation:
        return False
    return True


@BY_HALF
@pytest.mark.parametrize("k", [FAIL, 1.25, 0.8, PASS])
def test_backward_underflow_term_is_tight(half: str, k: float) -> None:
    """The oracle's dx plus k times tau at the subnormal entry: beyond the bound by a quarter
    fails, within it by a fifth passes (the rounding of dx there is at most sigma / 2, a few
    thousandths of tau)."""
    x, g = _underflow_case(half)
    tol = _backward_tolerance(x, g, half)

    def backward(dout: A, y: A) -> A:
        dx = oracle.softmax_vjp(dout.astype(np.float64), oracle.softmax(x.astype(np.float64)))
        dx[0, 2] += k * tol[0, 2]
        return dx.astype(dout.dtype)

    passed = _backward_passes(h.pairwise, backward, x, g)
    assert passed == (k < 1), (
        f"{half}: an error of {k}x the backward bound {'passed' if passed else 'failed'}"
    )


@BY_HALF
def test_a_correct_kernel_near_the_underflow_term_passes(half: str) -> None:
    """The correct half-in-half kernel passes; at float16 its error at the subnormal entry is
    beyond the former allowance sigma (max|g| + D + 4), and above half the bound: the term
    is needed, and not loose."""
    x, g = _underflow_case(half)
    assert _backward_passes(h.pairwise, h.pairwise_backward, x, g)
    if half == "float16":
        y = oracle.softmax(x.astype(np.float64))
        error = abs(
            float(h.pairwise_backward(g, h.pairwise(x))[0, 2])
            - oracle.softmax_vjp(g.astype(np.float64), y)[0, 2]
        )
        former = SIGMA * (float(np.abs(g.astype(np.float64)).max()) + 3 + 4)
        assert former < error < _backward_tolerance(x, g, half)[0, 2]
        assert error > 0.5 * _backward_tolerance(x, g, half)[0, 2]


def test_a_subnormal_probability_one_step_low_is_caught() -> None:
    """float16: the kernel with its subnormal probability one subnormal step lower (off by
    1.78 sigma_h, where the forward's two roundings allow sigma_h) fails
    backward_matches_reference."""
    x, g = _underflow_case("float16")

    def forward(xx: A) -> A:
        y = h.pairwise(xx)
        y[0, 2] -= y.dtype.type(SIGMA)
        return y

    assert not _backward_passes(forward, h.pairwise_backward, x, g)


def test_a_bfloat16_probability_flushed_to_zero_is_caught() -> None:
    """bfloat16 has the same structure, but a probability reaches its subnormals only where
    t_i >= 87, and there the forward's relative bound eta_i >= (7 + t_i) u_h > 0.37 already
    exceeds a few subnormal steps (y_3 = 12.1 sigma here): what is caught is a probability
    flushed to zero, as a kernel without gradual underflow would (``input-worst-case``)."""
    x, g = _underflow_case("bfloat16")

    def forward(xx: A) -> A:
        y = h.pairwise(xx)
        y[0, 2] = 0
        return y

    assert not _backward_passes(forward, h.pairwise_backward, x, g)
