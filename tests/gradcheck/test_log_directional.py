"""``log_softmax_directional_check``: log_softmax's backward along random directions, entry by
entry, through softmax's symmetric Jacobian diag(y) J.

* Correct code passes, in the styles it is written in (the bundled reference, the
  textbook shifted form, ``log(softmax(x))`` on moderate logits, torch), at float32 and
  float64, from 65 to 8192 columns, and as a property on adversarial well-conditioned
  logits. A forward and backward that agree with each other pass whatever they compute
  (a temperature, an offset output): the check compares the backward with the forward's
  own derivative, not with the reference.
* Wrong backwards are rejected at long rows (the known-bad log_softmax backwards, a
  doubled and a zero one, the identity), with the worst entry reported.
* Bad arguments raise as in ``directional_check``.

The bound itself is written out again and shown tight in
tests/tolerances/test_tightness.py (``test_log_central_differences_along_directions``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import bad_log_impls as bad
import numpy as np
import pytest
from conftest import require
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from softmax_verify.bundled.reference import log_softmax, log_softmax_backward, softmax
from softmax_verify.gradcheck import GradcheckResult, log_softmax_directional_check
from softmax_verify.strategies import well_conditioned_logits

Array = NDArray[Any]
Pair = tuple[Callable[..., Any], Callable[..., Any]]
DTYPES = (np.float32, np.float64)
SHAPES = [(1, 65), (3, 100), (2, 129), (4, 1000), (4, 8192)]


def textbook_forward(x: Array) -> Array:
    shifted = x - x.max(axis=1, keepdims=True)
    return np.asarray(shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True)))


def textbook_backward(dout: Array, z: Array) -> Array:
    return np.asarray(dout - np.exp(z) * dout.sum(axis=1, keepdims=True))


def log_of_softmax(x: Array) -> Array:
    return np.asarray(np.log(softmax(x, axis=1)))  # right while nothing underflows


def torch_pair() -> Pair:
    torch = require("torch")

    def forward(x: Array) -> tuple[Array, Any]:
        t = torch.from_numpy(np.ascontiguousarray(x)).requires_grad_(True)
        z = torch.log_softmax(t, dim=1)
        return z.detach().numpy().copy(), (t, z)

    def backward(dout: Array, cache: Any) -> Array:
        t, z = cache
        (grad,) = torch.autograd.grad(z, t, torch.from_numpy(dout), retain_graph=True)
        out: Array = grad.numpy().copy()
        return out

    return forward, backward


def _tempered(t: float) -> Pair:
    """log_softmax(x / T) with its own exact backward: wrong, but self-consistent."""

    def forward(x: Array) -> Array:
        return log_softmax(x / t, axis=1).astype(x.dtype)

    def backward(dout: Array, z: Array) -> Array:
        return (log_softmax_backward(dout, z, axis=1) / t).astype(dout.dtype)

    return forward, backward


def _offset(c: float) -> Pair:
    """An output off by a constant, with the backward of that output: consistent."""

    def forward(x: Array) -> Array:
        return (log_softmax(x, axis=1) - c).astype(x.dtype)

    def backward(dout: Array, z: Array) -> Array:
        y = np.exp(z.astype(np.float64) + c)
        return np.asarray(dout - y * dout.sum(axis=1, keepdims=True), dtype=dout.dtype)

    return forward, backward


CORRECT: dict[str, Callable[[], Pair]] = {
    "reference": lambda: (bad.correct_forward, bad.correct_backward),
    "textbook": lambda: (textbook_forward, textbook_backward),
    "log_of_softmax": lambda: (log_of_softmax, textbook_backward),
    "torch": torch_pair,
    "tempered_pair": lambda: _tempered(1.01),
    "offset_pair": lambda: _offset(3.0),
}

WRONG: dict[str, Pair] = {
    "softmax_vjp": (bad.correct_forward, bad.softmax_vjp_backward),
    "forgotten_sum": (bad.correct_forward, bad.forgotten_sum_backward),
    "abs_sum": (bad.correct_forward, bad.abs_sum_backward),
    "doubled": (bad.correct_forward, lambda g, z: 2 * bad.correct_backward(g, z)),
    "zero": (bad.correct_forward, lambda g, z: np.zeros_like(g)),
    "identity": (bad.correct_forward, lambda g, z: g.copy()),
    "tempered_forward_only": (_tempered(1.05)[0], bad.correct_backward),
}


def logits(shape: tuple[int, int], dtype: Any, seed: int = 0) -> Array:
    out: Array = (np.random.default_rng(seed).standard_normal(shape) * 3).astype(dtype)
    return out


def assert_passed(result: GradcheckResult) -> None:
    assert result.passed, result.mismatch.describe() if result.mismatch else result
    assert abs(result.expected - result.actual) <= result.tolerance
    assert result.tolerance > 0


@pytest.mark.parametrize("impl", list(CORRECT))
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_correct_code_passes(impl: str, dtype: Any, shape: tuple[int, int]) -> None:
    forward, backward = CORRECT[impl]()
    result = log_softmax_directional_check(forward, backward, logits(shape, dtype), seed=3)
    assert_passed(result)
    assert (result.forward_calls, result.backward_calls) == (5, 2)


@pytest.mark.parametrize("impl", list(WRONG))
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("shape", [(3, 100), (4, 8192)], ids=str)
def test_wrong_backwards_are_rejected(impl: str, dtype: Any, shape: tuple[int, int]) -> None:
    forward, backward = WRONG[impl]
    result = log_softmax_directional_check(forward, backward, logits(shape, dtype))
    assert not result.passed
    assert result.mismatch is not None
    assert result.mismatch.worst_index == result.worst
    assert abs(result.expected - result.actual) > result.tolerance
    assert "not equal within the derived tolerance" in result.mismatch.describe()


@settings(max_examples=30, deadline=None)
@given(data=st.data(), dtype=st.sampled_from(DTYPES))
def test_no_false_alarm_on_adversarial_logits(data: st.DataObject, dtype: Any) -> None:
    n = data.draw(st.integers(1, 4))
    d = data.draw(st.sampled_from([65, 127, 128, 129, 300, 1023]))
    spread = data.draw(st.sampled_from([12.0, 40.0]))  # 40: probabilities down to e^-40
    x = data.draw(well_conditioned_logits(dtype, shape=(n, d), spread=spread))
    seed = data.draw(st.integers(0, 2**32 - 1))
    assert_passed(log_softmax_directional_check(log_softmax, log_softmax_backward, x, seed=seed))


def test_a_cache_consuming_backward_gets_a_fresh_cache() -> None:
    """A backward that writes into its cache (z) gets a new forward(x) before the next one."""

    def consuming(dout: Array, z: Array) -> Array:
        np.exp(z, out=z)
        z *= dout.sum(axis=1, keepdims=True)
        np.subtract(dout, z, out=z)
        return z

    x = logits((3, 100), np.float64)
    result = log_softmax_directional_check(log_softmax, consuming, x, directions=3)
    assert_passed(result)
    assert result.forward_calls > 1 + 2 * 3  # a fresh forward(x) before directions 2 and 3


@pytest.mark.parametrize("directions", [0, -1])
def test_directions_must_be_positive(directions: int) -> None:
    with pytest.raises(ValueError, match="directions must be a positive int"):
        log_softmax_directional_check(
            log_softmax, log_softmax_backward, np.ones((2, 3)), directions=directions
        )


def test_x_must_be_finite_and_a_matrix() -> None:
    with pytest.raises(ValueError, match="x must be finite"):
        log_softmax_directional_check(log_softmax, log_softmax_backward, np.array([[0.0, np.nan]]))
    with pytest.raises(ValueError, match="2-D"):
        log_softmax_directional_check(log_softmax, log_softmax_backward, np.ones(3))
    with pytest.raises(ValueError, match="too large"):
        log_softmax_directional_check(
            log_softmax, log_softmax_backward, np.array([[1e30, 0.0]], dtype=np.float32)
        )
