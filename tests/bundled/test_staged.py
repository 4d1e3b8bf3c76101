"""The staged softmax graph (``softmax_verify.bundled.staged``): values, stages and containers.

* ``staged_forward`` / ``staged_backward`` agree with ``softmax`` / ``softmax_backward``
  to within what two correct implementations may differ by (tolerances module);
* each stage is its formula from the module docstring, checked as a mathematical
  relation between stage values (bitwise where the formula is one correctly rounded
  IEEE operation, within a derived rounding bound otherwise);
* the graph is stable up to the dtype's largest logits;
* the containers are immutable NamedTuples;
* the notebook's buggy ``dexps_1 = dsexps / rowsum(exps) * exps`` gives
  ``y * (1 - y)`` instead of 0 for an all-ones ``dout``: why the stage exists.
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numpy.typing import NDArray

from softmax_verify.bundled.reference import softmax, softmax_backward
from softmax_verify.bundled.staged import (
    STAGE_NAMES,
    StagedCache,
    StagedGradients,
    staged_backward,
    staged_forward,
)
from softmax_verify.strategies import DTYPES, logits, upstreams, well_conditioned_logits
from softmax_verify.tolerances import (
    backward_error_bound,
    forward_error_bound,
    forward_relative_bound,
    gamma,
    row_sum_bound,
)

FloatArray = NDArray[np.floating[Any]]
Float64Array = NDArray[np.float64]

BY_DTYPE = pytest.mark.parametrize("dtype", DTYPES, ids=str)


def _f64(a: FloatArray) -> Float64Array:
    return np.asarray(a, dtype=np.float64)


def _y_upper(x: FloatArray, y_hat: FloatArray, dtype: np.dtype[Any]) -> Float64Array:
    """An upper bound on the exact softmax from a correct result ``y_hat``.

    |y_hat - y| <= eta y + lambda (tolerances.forward_error_bound) gives
    y <= (y_hat + lambda) / (1 - eta); eta < 1/2 wherever it is nonzero.
    """
    eta = forward_relative_bound(x, dtype)
    lam = float(np.finfo(dtype).smallest_normal)
    upper: Float64Array = (np.abs(_f64(y_hat)) + lam) / (1 - eta)
    return upper


@st.composite
def _logits_and_upstream(draw: st.DrawFn, dtype: np.dtype[Any]) -> tuple[FloatArray, FloatArray]:
    x = draw(logits(dtype), label="x")
    dout = draw(upstreams((int(x.shape[0]), int(x.shape[1])), dtype), label="dout")
    return x, dout


# --- agreement with the reference ---------------------------------------------------------------


@BY_DTYPE
@given(data=st.data())
def test_staged_forward_matches_softmax(dtype: np.dtype[Any], data: st.DataObject) -> None:
    x = data.draw(logits(dtype), label="x")  # magnitudes up to finfo(dtype).max
    y, cache = staged_forward(x)
    reference = softmax(x)
    assert y.dtype == dtype
    assert all(stage.dtype == dtype for stage in cache)
    assert cache.exps.shape == x.shape
    assert cache.sexps.shape == cache.divexps.shape == (x.shape[0], 1)
    # Both are correct forwards: each within eta y + lambda of the exact y, so they
    # differ by at most twice that, with y bounded above from either result.
    tolerance = 2 * forward_error_bound(x, _y_upper(x, reference, dtype), dtype)
    assert np.all(np.abs(_f64(y) - _f64(reference)) <= tolerance)


@BY_DTYPE
@given(data=st.data())
def test_staged_backward_matches_softmax_backward(
    dtype: np.dtype[Any], data: st.DataObject
) -> None:
    x, dout = data.draw(_logits_and_upstream(dtype))
    _, cache = staged_forward(x)
    grads = staged_backward(dout, cache)
    y_hat = softmax(x)
    reference = softmax_backward(dout, y_hat)
    assert grads.dx.dtype == dtype
    # Both pipelines x -> dx are correct backwards: each within backward_error_bound of
    # the exact dx. The bound grows with y, so evaluating it at an upper bound on y is safe.
    tolerance = 2 * backward_error_bound(x, _y_upper(x, y_hat, dtype), dout, dtype)
    assert np.all(np.abs(_f64(grads.dx) - _f64(reference)) <= tolerance)


@BY_DTYPE
@given(data=st.data())
def test_all_ones_upstream_gives_zero_gradient(dtype: np.dtype[Any], data: st.DataObject) -> None:
    x = data.draw(logits(dtype), label="x")
    dout = np.ones_like(x)
    _, cache = staged_forward(x)
    dx = staged_backward(dout, cache).dx
    # Each row of y sums to 1 whatever x is, so the exact gradient is 0.
    bound = backward_error_bound(x, _y_upper(x, softmax(x), dtype), dout, dtype)
    assert np.all(np.abs(_f64(dx)) <= bound)


# --- each stage is its formula ------------------------------------------------------------------


@BY_DTYPE
@given(data=st.data())
def test_stages_equal_their_formulas(dtype: np.dtype[Any], data: st.DataObject) -> None:
    x, dout = data.draw(_logits_and_upstream(dtype))
    y, cache = staged_forward(x)
    exps, sexps, divexps = cache
    grads = staged_backward(dout, cache)
    d = x.shape[1]
    sigma = float(np.finfo(dtype).smallest_subnormal)

    # exps = exp(x - rowmax(x)): in [0, 1], and exactly 1 at each row's maximum (shift 0).
    assert ((exps >= 0) & (exps <= 1)).all()
    np.testing.assert_array_equal(exps.max(axis=1), 1)
    np.testing.assert_array_equal(exps[np.arange(x.shape[0]), np.argmax(x, axis=1)], 1)

    # sexps = rowsum(exps): a sum of D terms rounds to within gamma_{D-1} of the exact sum,
    # and the check's own float64 sum to within gamma_{D-1} (float64) of it too.
    exact_sum = _f64(exps).sum(axis=1, keepdims=True)
    sum_tolerance = (gamma(d - 1, dtype) + gamma(d - 1, np.float64)) * exact_sum
    assert np.all(np.abs(_f64(sexps) - exact_sum) <= sum_tolerance)
    assert ((sexps >= 1) & (sexps <= d)).all()  # the maximum contributes 1, the rest <= 1

    # One IEEE operation each, correctly rounded: exactly one right answer.
    np.testing.assert_array_equal(divexps, np.divide(1, sexps, dtype=dtype))
    np.testing.assert_array_equal(y, exps * divexps)
    np.testing.assert_array_equal(grads.dexps_0, divexps * dout)

    # ddivexps = rowsum(exps * dout): an inner product of length D is within
    # gamma_D sum|e g| + D sigma (products in the subnormal range round absolutely);
    # the float64 check adds its own gamma_D (float64) sum|e g|.
    products = _f64(exps) * _f64(dout)
    abs_dot = np.abs(products).sum(axis=1, keepdims=True)
    dot_tolerance = (gamma(d, dtype) + gamma(d, np.float64)) * abs_dot + d * sigma
    assert np.all(
        np.abs(_f64(grads.ddivexps) - products.sum(axis=1, keepdims=True)) <= dot_tolerance
    )

    # dsexps = -ddivexps / sexps**2: two roundings (square, divide) of the stage values
    # in dtype and two more in the float64 check, plus sigma if the quotient is subnormal.
    expected = -_f64(grads.ddivexps) / _f64(sexps) ** 2
    tolerance = (gamma(2, dtype) + gamma(2, np.float64)) * np.abs(expected) + sigma
    assert np.all(np.abs(_f64(grads.dsexps) - expected) <= tolerance)

    # dexps_1 is dsexps broadcast to (N, D), as its own array (not a read-only view).
    assert grads.dexps_1.shape == x.shape
    np.testing.assert_array_equal(grads.dexps_1, np.broadcast_to(grads.dsexps, x.shape))
    assert grads.dexps_1.flags.writeable
    assert not np.shares_memory(grads.dexps_1, grads.dsexps)

    # dx = exps * (dexps_0 + dexps_1): two correctly rounded operations on the stages.
    np.testing.assert_array_equal(grads.dx, exps * (grads.dexps_0 + grads.dexps_1))
    for name in STAGE_NAMES:
        assert getattr(grads, name).dtype == dtype, name


# --- stability ----------------------------------------------------------------------------------

HUGE = {np.dtype(np.float32): 1e38, np.dtype(np.float64): 1e300}


@BY_DTYPE
def test_stable_for_huge_logits(dtype: np.dtype[Any]) -> None:
    big = HUGE[np.dtype(dtype)]
    x = np.array(
        [
            [big, -big, 0.0, 1.0],
            [big, big, big, big],  # constant: exactly uniform
            [-big, -big, -big, -big],
            [big, 0.9 * big, -big, big],  # tie at the top
            [-big, 0.0, -1.0, 3.0],
        ],
        dtype=dtype,
    )
    dout = np.array([[1.0, -2.0, 0.5, 3.0]] * x.shape[0], dtype=dtype)
    y, cache = staged_forward(x)
    grads = staged_backward(dout, cache)
    for name, value in [*cache._asdict().items(), ("y", y), *grads._asdict().items()]:
        assert np.isfinite(value).all(), name
    np.testing.assert_array_equal(y[1], 0.25)
    np.testing.assert_array_equal(y[2], 0.25)
    np.testing.assert_array_equal(y[0], [1.0, 0.0, 0.0, 0.0])
    np.testing.assert_array_equal(y[3], [0.5, 0.0, 0.0, 0.5])
    sums = _f64(y).sum(axis=1)
    assert np.all(np.abs(sums - 1) <= row_sum_bound(x.shape[1], dtype))
    tolerance = 2 * backward_error_bound(x, _y_upper(x, softmax(x), dtype), dout, dtype)
    assert np.all(np.abs(_f64(grads.dx) - _f64(softmax_backward(dout, softmax(x)))) <= tolerance)


# --- containers ---------------------------------------------------------------------------------


def test_containers_are_immutable_named_tuples() -> None:
    x = np.array([[0.0, 1.0, 2.0], [3.0, 3.0, -1.0]])
    _, cache = staged_forward(x)
    grads = staged_backward(np.ones_like(x), cache)
    assert isinstance(cache, StagedCache)
    assert isinstance(cache, tuple)
    assert StagedCache._fields == ("exps", "sexps", "divexps")
    assert isinstance(grads, StagedGradients)
    assert isinstance(grads, tuple)
    assert StagedGradients._fields == STAGE_NAMES
    assert cache[0] is cache.exps
    assert grads[-1] is grads.dx
    with pytest.raises(AttributeError):
        cast(Any, cache).exps = np.zeros_like(x)  # a NamedTuple has no setters
    with pytest.raises(AttributeError):
        cast(Any, grads).dx = np.zeros_like(x)
    with pytest.raises(TypeError):
        cast(Any, cache)[0] = np.zeros_like(x)
    assert cache._replace(exps=x).exps is x  # changes make a new tuple ...
    assert cache.exps is not x  # ... and leave the original alone


# --- why dexps_1 is a broadcast -----------------------------------------------------------------


def _notebook_bug(cache: StagedCache, grads: StagedGradients) -> FloatArray:
    """dx with the notebook's dexps_1 = dsexps / rowsum(exps) * exps."""
    exps = cache.exps
    dexps_1 = grads.dsexps / exps.sum(axis=1, keepdims=True) * exps
    bad: FloatArray = exps * (grads.dexps_0 + dexps_1)
    return bad


@BY_DTYPE
@given(data=st.data())
def test_notebook_formula_gives_y_times_one_minus_y_for_all_ones(
    dtype: np.dtype[Any], data: st.DataObject
) -> None:
    # Well-conditioned rows (spread <= 12, |x| <= 32): y >= e^-12 / D, nothing underflows,
    # so every rounding below is relative.
    x = data.draw(well_conditioned_logits(dtype), label="x")
    y, cache = staged_forward(x)
    grads = staged_backward(np.ones_like(x), cache)
    bad = _notebook_bug(cache, grads)
    # With dout = 1: dexps_0 = 1/s, dsexps = -1/s, and the bug's extra factor exps/s
    # turns the row-sum path into -e^2/s^2, so dx = e/s - e^2/s^2 = y (1 - y), not 0.
    # Rounding: r = e/s from the stage values; y = fl(e * fl(1/s)) is within gamma_2 r;
    # the bug's first term 1/s rounds once, the second (s^2, two divisions, times e)
    # four times, the sum and the final product once each: within gamma_6 (r + r^2) of
    # r (1 - r); comparing with y (1 - y) in float64 adds gamma_2 r (|1 - 2r| <= 1) plus
    # float64's own three roundings: gamma_10 (y + y^2) covers it all, with r <= y (1 + gamma_2).
    y64 = _f64(y)
    expected = y64 * (1 - y64)
    tolerance = (gamma(10, dtype) + gamma(3, np.float64)) * (y64 + y64**2)
    assert np.all(np.abs(_f64(bad) - expected) <= tolerance)


@BY_DTYPE
def test_notebook_formula_is_caught_where_the_correct_one_passes(dtype: np.dtype[Any]) -> None:
    x = np.array([[0.0, 0.0], [1.0, -1.0], [2.0, 2.0]], dtype=dtype)
    dout = np.ones_like(x)
    _, cache = staged_forward(x)
    grads = staged_backward(dout, cache)
    bound = backward_error_bound(x, _y_upper(x, softmax(x), dtype), dout, dtype)
    assert np.all(np.abs(_f64(grads.dx)) <= bound)  # the broadcast: dx ~ 0
    bad = _notebook_bug(cache, grads)
    assert np.all(np.abs(_f64(bad)) > bound)  # the bug: y (1 - y), e.g. 0.25 for ties
    np.testing.assert_allclose(bad[0], 0.25, rtol=float(gamma(10, dtype)))
