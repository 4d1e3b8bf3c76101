"""Tightness: every numeric invariant fails code wrong by a few times its derived bound,
and passes code whose error sits inside it.

Each test builds an implementation that is the float64 oracle (rounded to the dtype)
plus an error of ``k`` times the invariant's bound, placed where the invariant compares
(one entry, one row, or one of the two calls it compares), on a fixed case. With
``k = FAIL`` (4) the invariant must fail; with ``k = PASS`` (1/2) it must pass. The
bounds are written out here from the derivations in docs/tolerances.md, independently
of ``softmax_verify.tolerances``: a tolerance widened (or narrowed) there makes these
tests fail.

A correct implementation whose error is near its bound passes too: float32 exps summed
one by one on a long constant row, a quarter of the bound
(``test_sequential_float32_accumulation_passes_near_the_bound``),
and the self-consistent temperature pair is told apart: it passes
``central_differences`` and fails ``matches_reference``.

Where a tight test is not possible, and why:

- ``outputs_in_unit_interval``: the slack is one ulp above 1 (2u), so "k times" is
  counted in ulps: 1 + 2u passes, the next float (1 + 4u) fails.
- ``jacobian_psd`` is one-sided: only a quadratic form near 0 can be pushed just below
  it, so it is tested at a constant upstream (variance 0).
- softmax's ``central_differences`` on rows longer than 64 (the directional check) has a
  bound made mostly of worst-case truncation and the forward's bound over the step; its
  formula is tested in tests/gradcheck/test_gradcheck.py, not here. log_softmax's (through
  softmax's symmetric diag(y) J) is written out and tested here, on rows of 100.
- The exact invariants (``finite_for_finite_input``, ``dtype_preserved``,
  ``input_not_mutated``, ``masked_entries_exactly_zero``, ``fully_masked_rows``) have
  no tolerance to be tight about.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

import softmax_verify.core.oracle as oracle
from softmax_verify.bundled.staged import staged_backward, staged_forward
from softmax_verify.core.errors import InvariantViolation
from softmax_verify.core.implementation import Implementation
from softmax_verify.invariants import (
    _backward,
    _determinism,
    _forward,
    _gradient_sums,
    _log_backward,
    _log_softmax,
    _stages,
)
from softmax_verify.invariants._cases import Case
from softmax_verify.target.local import LocalImplementation

A = NDArray[Any]
F64 = np.dtype(np.float64)
DTYPES = [np.dtype(np.float32), F64]
BY_DTYPE = pytest.mark.parametrize("dtype", DTYPES, ids=str)
#: Multiples of the bound: wrong by FAIL times it must fail, by PASS times it must pass.
FAIL, PASS = 4.0, 0.5
BY_K = pytest.mark.parametrize("k", [FAIL, PASS], ids=["4x-fails", "half-passes"])
N, D = 3, 16

# --- the bounds, written out from docs/tolerances.md ------------------------------------------


def _u(dtype: np.dtype[Any]) -> float:
    return 2.0**-24 if dtype == np.float32 else 2.0**-53


def _lam(dtype: np.dtype[Any]) -> float:
    return 2.0**-126 if dtype == np.float32 else 2.0**-1022


def _gamma(n: Any, dtype: np.dtype[Any]) -> A:
    nu = np.asarray(n, dtype=np.float64) * _u(dtype)
    out: A = nu / (1 - nu)
    return out


def _eta(x: A, dtype: np.dtype[Any], moved: float = 0.0) -> A:
    """eta_i = gamma(D + 10 + ln D + t_i), t_i enlarged by 2 moved."""
    x64 = x.astype(np.float64)
    t = x64.max(axis=1, keepdims=True) - x64 + 2 * moved
    return _gamma(x.shape[1] + 10 + math.log(x.shape[1]) + t, dtype)


def _fwd(x: A, y: A, dtype: np.dtype[Any]) -> A:
    """|y_hat - y| <= eta y + lambda."""
    return _eta(x, dtype) * y + _lam(dtype)


def _ref_fwd(x: A, y: A, dtype: np.dtype[Any]) -> A:
    return _fwd(x, y, dtype) + _fwd(x, y, F64)


def _bwd(x: A, y: A, g: A, dtype: np.dtype[Any], moved: float = 0.0) -> A:
    """tau = y[(eta + gamma(D+4))(|g| + P) + Q] + lambda(m(|g| + P) + y sum m|g|)
    + (D + 4) lambda, m = 1 where y(1 - eta) < 2 lambda (a probability that may underflow)."""
    d, lam = x.shape[1], _lam(dtype)
    eta = _eta(x, dtype, moved)
    ag = np.abs(g.astype(np.float64))
    p = (ag * y).sum(axis=1, keepdims=True)
    q = (ag * y * eta).sum(axis=1, keepdims=True)
    low = y * (1 - eta) < 2 * lam
    under = np.where(low, ag + p, 0.0) + y * np.where(low, ag, 0.0).sum(axis=1, keepdims=True)
    out: A = y * ((eta + _gamma(d + 4, dtype)) * (ag + p) + q) + lam * (under + d + 4)
    return out


def _log_a(x: A, z: A, dtype: np.dtype[Any], moved: float = 0.0) -> A:
    """a_i = gamma(D + 10 + 5 ln D) + u (t_i + 2|z_i|)(1 + 4u) + D lambda."""
    d, u = x.shape[1], _u(dtype)
    x64 = x.astype(np.float64)
    t = x64.max(axis=1, keepdims=True) - x64 + 2 * moved
    out: A = (
        _gamma(d + 10 + 5 * math.log(d), dtype)
        + u * (1 + 4 * u) * (t + 2 * (np.abs(z) + 2 * moved))
        + d * _lam(dtype)
    )
    return out


def _log_bwd(x: A, z: A, g: A, dtype: np.dtype[Any]) -> A:
    """y G (rho + gamma(D+3)(1 + rho)) + gamma(3)|g| + lambda (G + D + 4)."""
    d = x.shape[1]
    y, ag = np.exp(z), np.abs(g.astype(np.float64))
    total = ag.sum(axis=1, keepdims=True)
    rho = np.expm1(_log_a(x, z, dtype)) + 4 * _u(dtype) + _eta(x, dtype)
    out: A = (
        y * total * (rho + _gamma(d + 3, dtype) * (1 + rho))
        + _gamma(3, dtype) * ag
        + _lam(dtype) * (total + d + 4)
    )
    return out


# --- fixed cases and implementations -----------------------------------------------------------


def _grid(rng: np.random.Generator, scale: float, shape: tuple[int, int] = (N, D)) -> A:
    """Normal draws rounded to multiples of 2**-8: exact in both dtypes, and so are sums
    with other such values (no rounding in the shifted or combined inputs)."""
    return np.round(rng.standard_normal(shape) * scale * 256) / 256


def _case(dtype: np.dtype[Any], seed: int = 0) -> Case:
    rng = np.random.default_rng(seed)
    return {
        "x": _grid(rng, 3).astype(dtype),
        "dout": _grid(rng, 1).astype(dtype),
        "u": _grid(rng, 1).astype(dtype),
        "v": _grid(rng, 1).astype(dtype),
        "a": np.array(2.0, dtype=dtype),
        "b": np.array(-0.5, dtype=dtype),
        "shift": np.array([[3.5], [-7.25], [100.0]], dtype=dtype),
        "perm": np.roll(np.arange(D), 5),
    }


def _bump(a: A, amount: A | float, at: tuple[int, int] = (0, 1)) -> A:
    """``a`` (float64) with ``amount`` (scalar, or the entry ``at`` of an array) added at ``at``."""
    out = np.array(a, dtype=np.float64)
    out[at] += float(np.asarray(amount)[at] if np.ndim(amount) else amount)
    return out


def _softmax_impl(
    dtype: np.dtype[Any],
    y_error: Callable[[A], A | None] = lambda x: None,
    dx_error: Callable[[A, A], A | None] = lambda x, g: None,
) -> Implementation:
    """The oracle rounded to ``dtype``, plus ``y_error(x)`` on the output and
    ``dx_error(x, dout)`` on the gradient where they return an array."""

    def forward(x: A) -> tuple[A, A]:
        y = oracle.softmax(x)
        extra = y_error(x)
        return (y if extra is None else y + extra).astype(dtype), x.copy()

    def backward(dout: A, x: A) -> A:
        dx = oracle.softmax_vjp(dout, oracle.softmax(x))
        extra = dx_error(x, dout)
        return (dx if extra is None else dx + extra).astype(dtype)

    return LocalImplementation(forward, backward, timeout=None)


def _log_impl(
    dtype: np.dtype[Any],
    z_error: Callable[[A], A | None] = lambda x: None,
    dx_error: Callable[[A, A], A | None] = lambda x, g: None,
) -> Implementation:
    def forward(x: A) -> tuple[A, A]:
        z = oracle.log_softmax(x)
        extra = z_error(x)
        return (z if extra is None else z + extra).astype(dtype), x.copy()

    def backward(dout: A, x: A) -> A:
        dx = oracle.log_softmax_vjp(dout, oracle.log_softmax(x))
        extra = dx_error(x, dout)
        return (dx if extra is None else dx + extra).astype(dtype)

    return LocalImplementation(forward, backward, timeout=None)


def _only_at(target: A, error: A) -> Callable[[A], A | None]:
    """An error that appears only for the input ``target`` (one of the two calls compared)."""
    return lambda x: error if x.shape == target.shape and np.array_equal(x, target) else None


def _verdict(
    check: Callable[[Implementation, Case], None], impl: Implementation, case: Case
) -> bool:
    try:
        check(impl, case)
    except InvariantViolation:
        return False
    return True


def _expect(k: float, passed: bool, what: str) -> None:
    if k == FAIL:
        assert not passed, f"{what}: an error of {k}x the derived bound passed"
    else:
        assert passed, f"{what}: an error of {k}x the derived bound failed"


# --- softmax forward ---------------------------------------------------------------------------


@BY_DTYPE
@BY_K
def test_rows_sum_to_one(dtype: np.dtype[Any], k: float) -> None:
    case = _case(dtype)
    tol = _gamma(D + 10 + 2 * math.log(D), dtype) + D * _lam(dtype) + _gamma(D, F64)
    impl = _softmax_impl(dtype, y_error=lambda x: _bump(np.zeros(x.shape), k * tol))
    _expect(k, _verdict(_forward.rows_sum_to_one, impl, case), "rows_sum_to_one")


@BY_DTYPE
@BY_K
def test_matches_reference(dtype: np.dtype[Any], k: float) -> None:
    case = _case(dtype)
    x = case["x"]
    tol = _ref_fwd(x, oracle.softmax(x), dtype)
    impl = _softmax_impl(dtype, y_error=lambda xx: _bump(np.zeros(xx.shape), k * tol))
    _expect(k, _verdict(_forward.matches_reference, impl, case), "matches_reference")


@BY_DTYPE
@BY_K
def test_shift_invariance(dtype: np.dtype[Any], k: float) -> None:
    case = _case(dtype)
    x = case["x"]
    shifted = (x + case["shift"]).astype(dtype)  # exact: both on the 2**-8 grid
    tol = _fwd(x, oracle.softmax(x), dtype) + _fwd(shifted, oracle.softmax(shifted), dtype)
    impl = _softmax_impl(dtype, y_error=_only_at(shifted, _bump(np.zeros(x.shape), k * tol)))
    _expect(k, _verdict(_forward.shift_invariance, impl, case), "shift_invariance")


@BY_DTYPE
@BY_K
def test_permutation_equivariance(dtype: np.dtype[Any], k: float) -> None:
    case = _case(dtype)
    x, perm = case["x"], case["perm"]
    permuted = np.ascontiguousarray(x[:, perm])
    tol = 2 * _fwd(x, oracle.softmax(x), dtype)[:, perm]
    impl = _softmax_impl(dtype, y_error=_only_at(permuted, _bump(np.zeros(x.shape), k * tol)))
    _expect(k, _verdict(_forward.permutation_equivariance, impl, case), "permutation")


@BY_DTYPE
@BY_K
def test_row_independence(dtype: np.dtype[Any], k: float) -> None:
    case = _case(dtype)
    x = case["x"]
    tol = 2 * _fwd(x, oracle.softmax(x), dtype)
    impl = _softmax_impl(dtype, y_error=_only_at(x, _bump(np.zeros(x.shape), k * tol)))
    _expect(k, _verdict(_forward.row_independence, impl, case), "row_independence")


@BY_DTYPE
@BY_K
def test_deterministic(dtype: np.dtype[Any], k: float) -> None:
    case = _case(dtype)
    x = case["x"]
    tol = 2 * _fwd(x, oracle.softmax(x), dtype)
    calls = []

    def every_other_call(xx: A) -> A | None:
        calls.append(1)
        return _bump(np.zeros(xx.shape), k * tol) if len(calls) % 2 == 0 else None

    impl = _softmax_impl(dtype, y_error=every_other_call)
    _expect(k, _verdict(_determinism.deterministic, impl, case), "deterministic")


@pytest.mark.parametrize(("ulps", "passes"), [(1, True), (2, False)])
@BY_DTYPE
def test_outputs_in_unit_interval_allows_one_ulp_above_one(
    dtype: np.dtype[Any], ulps: int, passes: bool
) -> None:
    case = _case(dtype)
    above = np.nextafter(dtype.type(1), dtype.type(2))
    if ulps == 2:
        above = np.nextafter(above, dtype.type(2))

    def forward(x: A) -> A:
        y = oracle.softmax(x).astype(dtype)
        y[0, 0] = above
        return y

    impl = LocalImplementation(forward, None, timeout=None)
    assert _verdict(_forward.outputs_in_unit_interval, impl, case) is passes


# --- softmax backward --------------------------------------------------------------------------


@BY_DTYPE
@BY_K
def test_backward_matches_reference(dtype: np.dtype[Any], k: float) -> None:
    case = _case(dtype)
    x, g = case["x"], case["dout"]
    y = oracle.softmax(x)
    tol = _bwd(x, y, g, dtype) + _bwd(x, y, g, F64)
    impl = _softmax_impl(dtype, dx_error=lambda xx, gg: _bump(np.zeros(xx.shape), k * tol))
    _expect(k, _verdict(_backward.backward_matches_reference, impl, case), "backward reference")


@BY_DTYPE
@BY_K
def test_ones_upstream_gives_zero(dtype: np.dtype[Any], k: float) -> None:
    case = _case(dtype)
    x = case["x"]
    case["dout"] = np.full(x.shape, 0.75, dtype=dtype)
    tol = _bwd(x, oracle.softmax(x), case["dout"], dtype)
    impl = _softmax_impl(dtype, dx_error=lambda xx, gg: _bump(np.zeros(xx.shape), k * tol))
    _expect(k, _verdict(_backward.ones_upstream_gives_zero, impl, case), "ones upstream")


@BY_DTYPE
@BY_K
def test_gradient_rows_sum_to_zero(dtype: np.dtype[Any], k: float) -> None:
    case = _case(dtype)
    x, g = case["x"], case["dout"]
    y = oracle.softmax(x)
    dx = oracle.softmax_vjp(g, y)
    tol = _bwd(x, y, g, dtype).sum(axis=1) + _gamma(D, F64) * np.abs(dx).sum(axis=1)
    impl = _softmax_impl(dtype, dx_error=lambda xx, gg: _bump(np.zeros(xx.shape), k * tol[0]))
    check = _gradient_sums.softmax_gradient_rows_sum_to_zero
    _expect(k, _verdict(check, impl, case), "gradient_rows_sum_to_zero")


def _row_dot(a: A, b: A) -> A:
    out: A = (a.astype(np.float64) * b.astype(np.float64)).sum(axis=1)
    return out


@BY_DTYPE
@BY_K
def test_jacobian_symmetry(dtype: np.dtype[Any], k: float) -> None:
    case = _case(dtype)
    x, u, v = case["x"], case["u"], case["v"]
    y = oracle.softmax(x)
    bu, bv = oracle.softmax_vjp(u, y), oracle.softmax_vjp(v, y)
    au, av = np.abs(u.astype(np.float64)), np.abs(v.astype(np.float64))
    tol = (
        _row_dot(au, _bwd(x, y, v, dtype))
        + _row_dot(av, _bwd(x, y, u, dtype))
        + _gamma(D, F64) * (_row_dot(au, np.abs(bv)) + _row_dot(av, np.abs(bu)))
    )
    # <u, B(v)> moves by |u_j| e when B(v)_j does by e.
    shift = k * tol[0] / abs(float(u[0, 1]))
    impl = _softmax_impl(
        dtype,
        dx_error=lambda xx, gg: (
            _bump(np.zeros(xx.shape), shift) if gg is not None and np.array_equal(gg, v) else None
        ),
    )
    _expect(k, _verdict(_backward.jacobian_symmetry, impl, case), "jacobian_symmetry")


@BY_DTYPE
@BY_K
def test_jacobian_psd_at_a_constant_upstream(dtype: np.dtype[Any], k: float) -> None:
    case = _case(dtype)
    x = case["x"]
    v = case["dout"] = np.full(x.shape, 0.5, dtype=dtype)  # <v, J v> = Var_y(v) = 0
    tol = _row_dot(np.abs(v), _bwd(x, oracle.softmax(x), v, dtype))
    # <v, B(v)> moves by -v_j e when B(v)_j does by -e.
    impl = _softmax_impl(
        dtype, dx_error=lambda xx, gg: _bump(np.zeros(xx.shape), -k * tol[0] / 0.5)
    )
    _expect(k, _verdict(_backward.jacobian_psd, impl, case), "jacobian_psd")


@BY_DTYPE
@BY_K
def test_linearity_in_upstream(dtype: np.dtype[Any], k: float) -> None:
    case = _case(dtype)
    x, u, v = case["x"], case["u"], case["v"]
    w = (2.0 * u - 0.5 * v).astype(dtype)  # exact on the grid
    y = oracle.softmax(x)
    tol = (
        _bwd(x, y, w, dtype)
        + 2.0 * _bwd(x, y, u, dtype)
        + 0.5 * _bwd(x, y, v, dtype)
        + _gamma(2, F64)
        * (np.abs(2 * oracle.softmax_vjp(u, y)) + np.abs(0.5 * oracle.softmax_vjp(v, y)))
    )
    impl = _softmax_impl(
        dtype,
        dx_error=lambda xx, gg: (
            _bump(np.zeros(xx.shape), k * tol) if np.array_equal(gg, w) else None
        ),
    )
    _expect(k, _verdict(_backward.linearity_in_upstream, impl, case), "linearity_in_upstream")


def _step(dtype: np.dtype[Any]) -> float:
    """The power of two nearest (24 (D + 10) u)^(1/3) (docs/tolerances.md, finite differences)."""
    return float(2.0 ** round(math.log2((24 * (D + 10) * _u(dtype)) ** (1 / 3))))


def _differences(x: A, h: float, f: Callable[[A], A]) -> A:
    """Delta[j, r, i] = f(x + h e_j)_ri - f(x - h e_j)_ri in float64 (x +- h exact here)."""
    out = np.empty((D, N, D))
    for j in range(D):
        plus, minus = x.astype(np.float64), x.astype(np.float64)
        plus[:, j] += h
        minus[:, j] -= h
        out[j] = f(plus) - f(minus)
    return out


@BY_DTYPE
@BY_K
def test_central_differences(dtype: np.dtype[Any], k: float) -> None:
    case = _case(dtype)
    x, g = case["x"], case["dout"]
    g64 = g.astype(np.float64)
    h = _step(dtype)  # x +- h is exact: x is on the 2**-8 grid, h a larger power of two
    y = oracle.softmax(x)
    eta = _eta(x, dtype, moved=h)
    # Truncation h^2/48 times the range of g; rounding: the forward bound at both points
    # (2 e^h eta y + 2 lambda, weighted by |g|), the float64 estimate's gamma(D + 3), over
    # the width 2h; plus the backward bound with eta at the moved points.
    rounding = (np.abs(g64) * 2 * (math.exp(h) * eta * y + _lam(dtype))).sum(axis=1)
    delta = _differences(x, h, lambda p: oracle.softmax(p).astype(dtype).astype(np.float64))
    spread = np.einsum("ri,jri->rj", np.abs(g64), np.abs(delta))
    tol = (h**2 / 48) * (g64.max(axis=1) - g64.min(axis=1))[:, None]
    tol = tol + (rounding[:, None] + _gamma(D + 3, F64) * spread) / (2 * h)
    ag = np.abs(g64)
    p = (ag * y).sum(axis=1, keepdims=True)
    q = (ag * y * eta).sum(axis=1, keepdims=True)
    tol = (
        tol
        + y * ((eta + _gamma(D + 4, dtype)) * (ag + p) + q)
        + _lam(dtype) * (ag.max(axis=1, keepdims=True) + D + 4)
    )
    impl = _softmax_impl(dtype, dx_error=lambda xx, gg: _bump(np.zeros(xx.shape), k * tol))
    _expect(k, _verdict(_backward.central_differences, impl, case), "central_differences")


@BY_DTYPE
@BY_K
def test_stage_gradients(dtype: np.dtype[Any], k: float) -> None:
    case = _case(dtype)
    x, g = case["x"], case["dout"]
    cache = staged_forward(x)[1]
    e, g64 = cache.exps.astype(np.float64), g.astype(np.float64)
    # ddivexps = rowsum(exps * dout): (gamma(D + 5) + lambda) rowsum|exps * dout| + lambda.
    tol = (_gamma(D + 5, dtype) + _lam(dtype)) * np.abs(e * g64).sum(axis=1) + _lam(dtype)

    def backward(dout: A, c: Any) -> dict[str, A]:
        stages = staged_backward(dout, c)._asdict()
        wrong = stages["ddivexps"].astype(np.float64)
        wrong[0, 0] += k * tol[0]
        stages["ddivexps"] = wrong.astype(dtype)
        return stages

    impl = LocalImplementation(staged_forward, backward, timeout=None)
    _expect(k, _verdict(_stages.stage_gradients, impl, case), "stage_gradients")


# --- log_softmax -------------------------------------------------------------------------------


@BY_DTYPE
@BY_K
def test_rows_logsumexp_zero(dtype: np.dtype[Any], k: float) -> None:
    case = _case(dtype)
    x = case["x"]
    z = oracle.log_softmax(x)
    b = (np.exp(z) * np.expm1(_log_a(x, z, dtype))).sum(axis=1)
    tol = b / (1 - b) + _gamma(D + 4, F64)
    # Every entry of row 0 moved by c moves its logsumexp by c.
    impl = _log_impl(
        dtype, z_error=lambda xx: np.where(np.arange(N)[:, None] == 0, k * tol[0], 0.0)
    )
    _expect(k, _verdict(_log_softmax.rows_logsumexp_zero, impl, case), "rows_logsumexp_zero")


@BY_DTYPE
@BY_K
def test_entries_nonpositive(dtype: np.dtype[Any], k: float) -> None:
    case = _case(dtype)
    slack = float(_gamma(D + 10 + 5 * math.log(D), dtype)) + D * _lam(dtype)

    def forward(x: A) -> A:
        z = oracle.log_softmax(x)
        z[0, 0] = k * slack
        return z.astype(dtype)

    impl = LocalImplementation(forward, None, timeout=None)
    _expect(k, _verdict(_log_softmax.entries_nonpositive, impl, case), "entries_nonpositive")


@BY_DTYPE
@BY_K
def test_log_matches_reference(dtype: np.dtype[Any], k: float) -> None:
    case = _case(dtype)
    x = case["x"]
    z = oracle.log_softmax(x)
    tol = _log_a(x, z, dtype) + _log_a(x, z, F64)
    impl = _log_impl(dtype, z_error=lambda xx: _bump(np.zeros(xx.shape), k * tol))
    _expect(k, _verdict(_log_softmax.matches_reference, impl, case), "log matches_reference")


@BY_DTYPE
@BY_K
def test_log_shift_permutation_and_row_independence(dtype: np.dtype[Any], k: float) -> None:
    case = _case(dtype)
    x, perm = case["x"], case["perm"]
    shifted = (x + case["shift"]).astype(dtype)
    a = _log_a(x, oracle.log_softmax(x), dtype)
    tol = a + _log_a(shifted, oracle.log_softmax(shifted), dtype)
    impl = _log_impl(dtype, z_error=_only_at(shifted, _bump(np.zeros(x.shape), k * tol)))
    _expect(k, _verdict(_log_softmax.shift_invariance, impl, case), "log shift_invariance")
    permuted = np.ascontiguousarray(x[:, perm])
    impl = _log_impl(
        dtype, z_error=_only_at(permuted, _bump(np.zeros(x.shape), 2 * k * a[:, perm]))
    )
    _expect(k, _verdict(_log_softmax.permutation_equivariance, impl, case), "log permutation")
    impl = _log_impl(dtype, z_error=_only_at(x, _bump(np.zeros(x.shape), 2 * k * a)))
    _expect(k, _verdict(_log_softmax.row_independence, impl, case), "log row_independence")


@BY_DTYPE
@BY_K
def test_log_backward_matches_reference_and_rows_sum(dtype: np.dtype[Any], k: float) -> None:
    case = _case(dtype)
    x, g = case["x"], case["dout"]
    z = oracle.log_softmax(x)
    tol = _log_bwd(x, z, g, dtype) + _log_bwd(x, z, g, F64)
    impl = _log_impl(dtype, dx_error=lambda xx, gg: _bump(np.zeros(xx.shape), k * tol))
    _expect(k, _verdict(_log_backward.backward_matches_reference, impl, case), "log backward")
    dx = oracle.log_softmax_vjp(g, z)
    row = _log_bwd(x, z, g, dtype).sum(axis=1) + _gamma(D, F64) * np.abs(dx).sum(axis=1)
    impl = _log_impl(dtype, dx_error=lambda xx, gg: _bump(np.zeros(xx.shape), k * row[0]))
    check = _gradient_sums.log_softmax_gradient_rows_sum_to_zero
    _expect(k, _verdict(check, impl, case), "log gradient_rows_sum_to_zero")


@BY_DTYPE
@BY_K
def test_log_linearity_in_upstream(dtype: np.dtype[Any], k: float) -> None:
    case = _case(dtype)
    x, u, v = case["x"], case["u"], case["v"]
    w = (2.0 * u - 0.5 * v).astype(dtype)
    z = oracle.log_softmax(x)
    tol = (
        _log_bwd(x, z, w, dtype)
        + 2.0 * _log_bwd(x, z, u, dtype)
        + 0.5 * _log_bwd(x, z, v, dtype)
        + _gamma(2, F64)
        * (np.abs(2 * oracle.log_softmax_vjp(u, z)) + np.abs(0.5 * oracle.log_softmax_vjp(v, z)))
    )
    impl = _log_impl(
        dtype,
        dx_error=lambda xx, gg: (
            _bump(np.zeros(xx.shape), k * tol) if np.array_equal(gg, w) else None
        ),
    )
    _expect(k, _verdict(_log_backward.linearity_in_upstream, impl, case), "log linearity")


@BY_DTYPE
@BY_K
def test_log_central_differences(dtype: np.dtype[Any], k: float) -> None:
    case = _case(dtype)
    x, g = case["x"], case["dout"]
    g64 = g.astype(np.float64)
    h = _step(dtype)
    z = oracle.log_softmax(x)
    # Truncation h^2 |z'''|/6 with |z'''| <= 1/(6 sqrt 3), times |sum g|; rounding: the
    # absolute forward bound a at both points (moved by h), the float64 estimate, over 2h.
    rounding = 2 * (np.abs(g64) * _log_a(x, z, dtype, moved=h)).sum(axis=1)
    delta = _differences(x, h, lambda p: oracle.log_softmax(p).astype(dtype).astype(np.float64))
    spread = np.einsum("ri,jri->rj", np.abs(g64), np.abs(delta))
    tol = (h**2 / (36 * math.sqrt(3))) * np.abs(g64.sum(axis=1))[:, None]
    tol = tol + (rounding[:, None] + _gamma(D + 3, F64) * spread) / (2 * h)
    tol = tol + _log_bwd(x, z, g, dtype)
    impl = _log_impl(dtype, dx_error=lambda xx, gg: _bump(np.zeros(xx.shape), k * tol))
    _expect(k, _verdict(_log_backward.central_differences, impl, case), "log central_differences")


# --- correct code near the bound, and the temperature pair -------------------------------------


def _naive_sequential_float32(x: A) -> A:
    """No max shift (correct while nothing overflows), exps added one at a time in float32."""
    e = np.exp(x.astype(np.float32))
    s = np.cumsum(e, axis=1, dtype=np.float32)[:, -1:]  # numpy's cumsum adds in order
    return (e / s).astype(np.float32)


def test_sequential_float32_accumulation_passes_near_the_bound() -> None:
    # On a constant row every addition in a binade of the running sum rounds by the same
    # amount in the same direction: the error grows with D, not sqrt(D), the worst order
    # there is. At x = -0.77 (found by a search of [-1, 1]) it reaches a quarter of the
    # bound at D = 8192; the other rows are ordinary.
    rng = np.random.default_rng(7)
    x = rng.uniform(-2, 2, size=(3, 8192)).astype(np.float32)
    x[0] = np.float32(-0.77)
    case: Case = {"x": x}
    impl = LocalImplementation(_naive_sequential_float32, None, timeout=None)
    y_exact = oracle.softmax(x)
    ratio = np.abs(impl.forward(x).y - y_exact) / _ref_fwd(x, y_exact, np.dtype(np.float32))
    assert ratio.max() > 0.2, ratio.max()
    _forward.matches_reference(impl, case)
    _forward.rows_sum_to_one(impl, case)


def _tempered(t: float) -> Implementation:
    def forward(x: A) -> A:
        return oracle.softmax(x / t).astype(x.dtype)

    def backward(dout: A, y: A) -> A:
        return (oracle.softmax_vjp(dout, y) / t).astype(dout.dtype)  # d/dx of softmax(x/T)

    return LocalImplementation(forward, backward, timeout=None)


@BY_DTYPE
def test_temperature_pair_passes_central_differences_and_fails_matches_reference(
    dtype: np.dtype[Any],
) -> None:
    case = _case(dtype)
    impl = _tempered(1.01)
    _backward.central_differences(impl, case)
    assert not _verdict(_forward.matches_reference, impl, case)


# --- log_softmax's central_differences along random directions (rows longer than 64) --------


def _log_directional_tol(x: A, u: A, h: float, dtype: np.dtype[Any]) -> A:
    """docs/tolerances.md, "log_softmax along random directions", at a point on the step grid
    (delta = 0): tau at the largest upstream a correct forward's weights give, the weights'
    error rho, the rounding of g, and the difference quotient's epsilon, all times y."""
    d, ug = x.shape[1], _u(dtype)
    sigma = 2.0**-149 if dtype == np.float32 else 2.0**-1074
    z = oracle.log_softmax(x)
    y = np.exp(z)
    a = _log_a(x, z, dtype)
    b = (y * np.expm1(a)).sum(axis=1, keepdims=True)
    rho = np.exp(a) / (1 - b) - 1 + 2 * _gamma(d + 4, F64)
    spread = (u.max(axis=1) - u.min(axis=1))[:, None]
    g1, g2 = float(_gamma(1, F64)), float(_gamma(2, F64))
    eps = h**2 * spread**3 / 24 + g1 * spread + (1 + g1) * _log_a(x, z, dtype, moved=h) / h
    eps = eps + g2 * (spread + eps)
    au = np.abs(u)
    p = (y * au).sum(axis=1, keepdims=True)
    q = (y * rho * au).sum(axis=1, keepdims=True)
    g_bound = y * (1 + rho) * au * (1 + ug) + sigma / 2
    out: A = (
        _log_bwd(x, z, g_bound, dtype)
        + y * ((1 + rho) * (ug * au + eps) + rho * p + q + ug * (p + q))
        + sigma * (1 + d * y) / 2
        + _lam(F64) * (d + 2 + spread + eps)
    )
    return out


@BY_DTYPE
@BY_K
def test_log_central_differences_along_directions(dtype: np.dtype[Any], k: float) -> None:
    """Rows of 100 columns: two random directions (seeded from x), each compared entry by
    entry; the backward is wrong by k times the smaller of the two bounds at one entry."""
    from softmax_verify.gradcheck._directions import _draw_eighths
    from softmax_verify.invariants._backward import seed_of

    rng = np.random.default_rng(5)
    x = _grid(rng, 3, (N, 100)).astype(dtype)  # on the 2**-8 grid: x' = x, delta = 0
    h = float(2.0 ** round(math.log2((24 * (100 + 10) * _u(dtype)) ** (1 / 3))))
    draws = np.random.default_rng(seed_of(x))
    tol = np.minimum(
        *(_log_directional_tol(x, _draw_eighths(draws, x.shape) / 8.0, h, dtype) for _ in "uv")
    )
    case: Case = {"x": x, "dout": _grid(rng, 1, (N, 100)).astype(dtype)}
    impl = _log_impl(dtype, dx_error=lambda xx, gg: _bump(np.zeros(xx.shape), k * tol))
    _expect(k, _verdict(_log_backward.central_differences, impl, case), "log directional")
