"""The ``deterministic`` invariant: both directions.

A reduction whose order changes from call to call (as a multithreaded kernel's does)
differs by rounding only and passes; dropout left on, or a gradient with noise in it,
differs by far more and fails.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from bad_impls import dropout_forward

from softmax_verify.bundled.reference import softmax
from softmax_verify.run.runner import run_invariant
from softmax_verify.target.local import LocalImplementation

A = np.ndarray[Any, Any]


def reordered_forward(x: A) -> A:
    """A correct softmax whose row sums add the columns in a new order on every call."""
    e = np.exp(x - x.max(axis=1, keepdims=True))
    order = np.random.default_rng().permutation(x.shape[1])
    y: A = e / e[:, order].sum(axis=1, keepdims=True)
    return y


def reordered_backward(dout: A, y: A) -> A:
    order = np.random.default_rng().permutation(y.shape[1])
    inner = (dout * y)[:, order].sum(axis=1, keepdims=True)
    dx: A = y * (dout - inner)
    return dx


def noisy_backward(dout: A, y: A) -> A:
    """A gradient with a little noise in it (a stochastic estimator left in)."""
    noise = 1e-3 * np.random.default_rng().standard_normal(y.shape)
    dx: A = y * (dout - (dout * y).sum(axis=1, keepdims=True)) + noise
    return dx


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_a_reduction_in_a_new_order_each_call_is_deterministic_enough(dtype: str) -> None:
    impl = LocalImplementation(reordered_forward, reordered_backward)
    result = run_invariant("deterministic", impl, dtype, profile="ci")
    assert result.status == "passed", result


def test_the_reordered_reduction_really_differs_between_calls() -> None:
    """The passing case above is not vacuous: its two calls differ in some bits."""
    x = np.random.default_rng(1).standard_normal((64, 512)).astype(np.float32)
    ys = [reordered_forward(x) for _ in range(20)]
    assert any(not np.array_equal(ys[0], y) for y in ys[1:])


def test_dropout_left_on_fails_with_the_input() -> None:
    result = run_invariant("deterministic", LocalImplementation(dropout_forward), "float64")
    assert result.status == "failed"
    # as such, or as a failure that did not happen again when rechecked: either way a finding
    assert "forward(x) gave different results on two calls with the same x" in result.message
    assert result.counterexample is not None
    assert "x" in result.counterexample


def test_a_noisy_backward_fails() -> None:
    impl = LocalImplementation(lambda x: softmax(x, axis=1), noisy_backward)
    result = run_invariant("deterministic", impl, "float64")
    assert result.status == "failed"
    assert "backward(dout, cache) gave different results" in result.message
