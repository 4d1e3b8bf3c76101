"""Tightness of the probabilistic half-precision bounds (``--accumulate input``), as
tests/tolerances/test_tightness.py does for float32 and float64.

The bounds are written out here from docs/tolerances.md ("input: the probabilistic model"),
independently of ``softmax_verify.tolerances``; float16 code equal to the float64 oracle plus
an error of ``k`` times the bound at one entry (matches_reference) or on one row's sum
(rows_sum_to_one) fails with ``k = 4`` and passes with ``k = 1/2``, at a row length where the
probabilistic bound is the smaller one (256) and at a long row (4096). The rounding of the
mutant to float16 adds at most u_h relative, far below half the bound (which contains Phi,
at least c sqrt(D - 1) u_h).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

import softmax_verify.core.oracle as oracle
from softmax_verify.core.errors import InvariantViolation
from softmax_verify.invariants import _forward
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


def _gamma_tilde(n: float) -> float:
    """min(gamma_n, exp(c sqrt(n) u + n u^2 / (1 - u)) - 1)."""
    likely = math.expm1(C * math.sqrt(n) * U + n * U * U / (1 - U))
    return min(float(_gamma(n)) if n * U < 1 else math.inf, likely)


def _phi(d: int) -> float:
    """The row sum's relative error: (1 + gamma~_{D-1})(1 + gamma_{4 + ln D}) - 1."""
    return (1 + _gamma_tilde(d - 1)) * (1 + float(_gamma(4 + math.log(d)))) - 1


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
