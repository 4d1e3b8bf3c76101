"""The float64 cross-entropy oracle (softmax_verify.core.cross_entropy) against mpmath at 50
digits, within the float64 bound every correct implementation gets (so within what every
``reference_*`` tolerance adds for it), and the bundled reference against the oracle.

Inputs: Hypothesis logits of every kind the strategies draw (ties, constant rows at any
magnitude, spikes, logits up to max/2, subnormals) in float32 and float64, index labels and
dyadic probability rows, the three reductions; then fixed extreme gaps (to 8.9e307), and
IEEE rows (NaN, inf, masked classes).
"""

from __future__ import annotations

from typing import Any

import mpmath
import numpy as np
import pytest
from conftest import require
from hypothesis import given
from hypothesis import strategies as st
from numpy.typing import NDArray

import softmax_verify.core.cross_entropy as oracle
from softmax_verify.bundled.cross_entropy import cross_entropy, cross_entropy_backward
from softmax_verify.core.dtypes import finfo, named_dtype
from softmax_verify.core.options import Reduction
from softmax_verify.strategies import logits
from softmax_verify.tolerances import (
    cross_entropy_backward_bound,
    cross_entropy_loss_bound,
    cross_entropy_row_bound,
    reference_cross_entropy_backward_bound,
    reference_cross_entropy_loss_bound,
)

DPS = 50
F64 = np.dtype(np.float64)
BY_DTYPE = pytest.mark.parametrize("dtype", [np.dtype(np.float32), F64], ids=str)
REDUCTIONS: tuple[Reduction, ...] = ("mean", "sum", "none")
A = NDArray[Any]


def _mp(a: A) -> list[list[Any]]:
    return [[mpmath.mpf(float(v)) for v in row] for row in np.asarray(a, dtype=np.float64)]


def exact(x: A, q: A, reduction: Reduction, g: A) -> tuple[list[Any], Any, list[list[Any]]]:
    """(row losses, reduced loss or None, dx) at DPS digits. Shifted, never through
    lse = m + log s: at |m| = 1e36 a 50-digit lse carries 1e-14 into every term."""
    with mpmath.workdps(DPS):
        xs, qs, n = _mp(x), _mp(q), x.shape[0]
        rows, grads = [], []
        for i, (xr, qr) in enumerate(zip(xs, qs, strict=True)):
            m = max(xr)
            s = mpmath.fsum(mpmath.exp(v - m) for v in xr)
            log_s = mpmath.log(s)
            pairs = zip(qr, xr, strict=True)
            rows.append(mpmath.fsum(qj * ((m - xj) + log_s) for qj, xj in pairs if qj != 0))
            c = mpmath.mpf(float(g[i] if reduction == "none" else g))
            c /= n if reduction == "mean" else 1
            mass = mpmath.fsum(qr)
            grads.append(
                [c * (mass * mpmath.exp(xj - m) / s - qj) for xj, qj in zip(xr, qr, strict=True)]
            )
        total = None if reduction == "none" else mpmath.fsum(rows) / (
            n if reduction == "mean" else 1
        )  # fmt: skip
        return rows, total, grads


def _err(computed: Any, value: Any) -> float:
    with mpmath.workdps(DPS):
        return float(abs(mpmath.mpf(float(computed)) - value))


def _check(x: A, q: A, reduction: Reduction, g: A) -> None:
    rows, total, grads = exact(x, q, reduction, g)
    ell = np.array([float(r) for r in rows])
    got = oracle.row_losses(x, q)
    bound = cross_entropy_row_bound(x, q, ell, F64)
    for i, r in enumerate(rows):
        assert _err(got[i], r) <= bound[i], (i, _err(got[i], r), bound[i], x[i], q[i])
    if total is not None:
        e = _err(oracle.loss(x, q, reduction), total)
        assert e <= cross_entropy_loss_bound(x, q, ell, F64, reduction), (e, reduction)
    c = oracle.weights(x.shape[0], reduction, g)
    dx, tau = oracle.vjp(x, q, reduction, g), cross_entropy_backward_bound(x, q, c, F64)
    for i, row in enumerate(grads):
        for j, v in enumerate(row):
            assert _err(dx[i, j], v) <= tau[i, j], (i, j, _err(dx[i, j], v), tau[i, j], x[i])


def _dyadic(draw: st.DrawFn, n: int, c: int) -> A:
    """Probability rows k_j / 64 with integers k_j summing to 64: exact, summing to 1."""
    rows = np.zeros((n, c))
    for i in range(n):
        cuts = sorted(draw(st.lists(st.integers(0, 64), min_size=c - 1, max_size=c - 1)))
        rows[i] = np.diff([0, *cuts, 64]) / 64
    return rows


@st.composite
def _cases(draw: st.DrawFn, dtype: np.dtype[Any]) -> tuple[A, A, Reduction, A]:
    half = float(finfo(dtype).max) / 2
    x = draw(logits(dtype, shape=st.tuples(st.integers(1, 4), st.integers(1, 7)),
                    max_magnitude=half))  # fmt: skip
    n, c = x.shape
    if draw(st.booleans()):
        q = oracle.targets(np.array(draw(st.lists(st.integers(0, c - 1), min_size=n,
                                                  max_size=n))), c)  # fmt: skip
    else:
        q = _dyadic(draw, n, c)
    reduction = draw(st.sampled_from(REDUCTIONS))
    g = np.array(draw(st.lists(st.floats(-4, 4), min_size=n, max_size=n)))
    return x, q, reduction, g if reduction == "none" else np.asarray(draw(st.floats(-4, 4)))


@BY_DTYPE
@given(data=st.data())
def test_the_oracle_is_within_the_float64_bound(dtype: np.dtype[Any], data: st.DataObject) -> None:
    _check(*data.draw(_cases(dtype), label="case"))


@pytest.mark.parametrize("gap", [1e1, 1e3, 1e15, 1e100, 1e300, 8.9e307])
@pytest.mark.parametrize("probs", [False, True], ids=["index", "probs"])
def test_extreme_gaps(gap: float, probs: bool) -> None:
    x = np.array([[0.0, -gap, 1.0, -gap / 3], [gap / 2, -gap / 2, 0.0, 3.0]])
    q = oracle.targets(np.array([1, 1]), 4)
    if probs:
        q = np.array([[0.25, 0.5, 0.25, 0.0], [0.0, 1.0, 0.0, 0.0]])
    for reduction in REDUCTIONS:
        g = np.array([1.0, -3.0]) if reduction == "none" else np.asarray(2.0)
        _check(x, q, reduction, g)
    assert np.isfinite(oracle.row_losses(x, q)).all()


def test_subnormal_and_constant_rows() -> None:
    x = np.array([[5e-324, 0.0, -5e-324], [1e300, 1e300, 1e300], [-1e300, -1e300, -1e300]])
    q = oracle.targets(np.array([0, 1, 2]), 3)
    _check(x, q, "mean", np.asarray(1.0))
    assert oracle.row_losses(x, q)[1:].tolist() == [np.log(3.0)] * 2


def test_ieee_rows_and_masked_classes() -> None:
    x = np.array(
        [
            [0.0, np.nan, 1.0],  # NaN: a NaN row
            [np.inf, 0.0, 1.0],  # +inf: a NaN row
            [-np.inf, -np.inf, -np.inf],  # no finite logit: NaN
            [-np.inf, 0.0, 0.0],  # a masked class without target weight: exact
            [-np.inf, 0.0, 0.0],  # a masked class with target weight: +inf
        ]
    )
    q = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0.5, 0.5], [0.5, 0.5, 0]], dtype=float)
    rows = oracle.row_losses(x, q)
    assert np.isnan(rows[:3]).all()
    assert rows[3] == np.log(2.0)
    assert rows[4] == np.inf
    dx = oracle.vjp(x, q, "sum", 1.0)
    assert np.isnan(dx[:3]).all()
    assert dx[3].tolist() == [0.0, 0.0, 0.0]
    assert dx[4].tolist() == [-0.5, 0.0, 0.5]


def test_off_the_simplex_the_loss_is_the_cross_entropy_of_q() -> None:
    # sum(q) != 1: -sum q log p (shift invariant), not lse - <q, x>, lse (1 - 0.75) apart.
    x, q = np.array([[1.0, 2.0, 3.0]]), np.array([[0.25, 0.25, 0.25]])
    assert abs(oracle.row_losses(x, q)[0] - oracle.row_losses(x + 100.0, q)[0]) < 1e-12
    issue = np.log(np.exp(x).sum()) - (q * x).sum()
    assert abs(oracle.row_losses(x, q)[0] - issue) > 0.1
    assert abs(oracle.vjp(x, q, "sum", 1.0).sum()) < 1e-15


def test_reductions_and_weights() -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, 7))
    q = oracle.targets(rng.integers(0, 7, 5), 7)
    rows = oracle.row_losses(x, q)
    assert float(oracle.loss(x, q, "sum")) == pytest.approx(rows.sum(), rel=1e-15)
    assert float(oracle.loss(x, q, "mean")) == pytest.approx(rows.mean(), rel=1e-15)
    np.testing.assert_array_equal(oracle.loss(x, q, "none"), rows)
    np.testing.assert_allclose(5 * oracle.vjp(x, q, "mean", 1.0), oracle.vjp(x, q, "sum", 1.0))
    with pytest.raises(ValueError, match=r"reduction 'none' takes an upstream of shape \(5,\)"):
        oracle.weights(5, "none", 1.0)
    with pytest.raises(TypeError, match="integer class indices"):
        oracle.targets(np.array([0.0, 1.0]), 3)
    # A mean of rows near max/2 each is finite though their sum is not.
    big = np.array([[8e307, -8e307]] * 4)
    assert np.isfinite(oracle.loss(big, oracle.targets(np.array([1, 1, 1, 1]), 2), "mean"))


@BY_DTYPE
@given(data=st.data())
def test_the_bundled_reference_is_within_its_bound(
    dtype: np.dtype[Any], data: st.DataObject
) -> None:
    _within_its_bound(dtype, data)


@pytest.mark.parametrize("name", ["float16", "bfloat16"])
@given(data=st.data())
def test_the_bundled_reference_takes_half_precision_within_its_bound(
    name: str, data: st.DataObject
) -> None:
    """Computed in float32 and rounded once: inside the default model's half bound."""
    if name == "bfloat16":
        require("ml_dtypes")
    _within_its_bound(named_dtype(name), data)


def _within_its_bound(dtype: np.dtype[Any], data: st.DataObject) -> None:
    x, q, reduction, g = data.draw(_cases(dtype), label="case")
    labels = q.astype(dtype) if data.draw(st.booleans()) else q.argmax(axis=1)
    # The labels as the code got them (a dyadic row of 12 bits is rounded in bfloat16).
    q = oracle.targets(labels, x.shape[1]) if labels.ndim == 1 else labels.astype(np.float64)
    ell = oracle.row_losses(x, q)
    loss = cross_entropy(x, labels, reduction)
    assert loss.dtype == dtype
    bound = reference_cross_entropy_loss_bound(x, q, ell, dtype, reduction)
    err = np.abs(loss.astype(np.float64) - oracle.loss(x, q, reduction))
    assert (err <= bound).all() or np.array_equal(loss, oracle.loss(x, q, reduction)), (err, bound)
    dx = cross_entropy_backward(x, labels, g.astype(dtype), reduction)
    c = oracle.weights(x.shape[0], reduction, g.astype(dtype))
    tau = reference_cross_entropy_backward_bound(x, q, c, dtype)
    expected = oracle.vjp(x, q, reduction, g.astype(dtype))
    assert (np.abs(dx.astype(np.float64) - expected) <= tau).all()
