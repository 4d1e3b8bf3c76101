"""Known-bad log_softmax implementations, each a mistake people really make.

Every entry (a ``bad_impls.Bad`` with ``kind="log_softmax"``) says which invariants it
must fail; tests/invariants/test_log_softmax.py runs each and checks that every log_softmax
invariant is failed by at least one entry.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from bad_impls import Bad
from numpy.typing import NDArray

from softmax_verify.bundled.reference import log_softmax, log_softmax_backward, softmax

A = NDArray[Any]


def correct_forward(x: A) -> A:
    return log_softmax(x, axis=1)


def correct_backward(dout: A, z: A) -> A:
    return log_softmax_backward(dout, z, axis=1)


def log_of_softmax_forward(x: A) -> A:
    return np.asarray(np.log(softmax(x, axis=1)))  # a probability that underflows gives -inf


def unshifted_forward(x: A) -> A:
    return np.asarray(x - np.log(np.exp(x).sum(axis=1, keepdims=True)))  # exp overflows


def max_not_added_back_forward(x: A) -> A:
    m = x.max(axis=1, keepdims=True)
    return np.asarray(x - np.log(np.exp(x - m).sum(axis=1, keepdims=True)))  # forgot "- m"


def sliced_forward(x: A) -> A:
    shifted = x - x.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    return np.asarray(shifted - np.log(e[:, :-1].sum(axis=1, keepdims=True) + 0.5 * e[:, -1:]))


def batch_sum_forward(x: A) -> A:
    shifted = x - x.max(axis=1, keepdims=True)
    return np.asarray(shifted - np.log(np.exp(shifted).sum()))  # one sum over the whole batch


def upcasting_forward(x: A) -> A:
    return log_softmax(x.astype(np.float64), axis=1)  # float64 out for float32 in


def mutating_forward(x: A) -> A:
    x -= x.max(axis=1, keepdims=True)
    x -= np.log(np.exp(x).sum(axis=1, keepdims=True))
    return x


def softmax_vjp_backward(dout: A, z: A) -> A:
    y = np.exp(z)  # the softmax VJP y * (g - <g, y>), applied to log_softmax
    return np.asarray(y * (dout - (dout * y).sum(axis=1, keepdims=True)))


def forgotten_sum_backward(dout: A, z: A) -> A:
    return np.asarray(dout - np.exp(z))  # the sum(dout) factor is missing


def abs_sum_backward(dout: A, z: A) -> A:
    return np.asarray(dout - np.exp(z) * np.abs(dout).sum(axis=1, keepdims=True))


def dropout_forward(x: A) -> A:
    """Dropout on the logits left on at inference: a fresh mask on every call."""
    keep = np.random.default_rng().random(x.shape) >= 0.1
    return log_softmax(np.where(keep, x / 0.9, 0).astype(x.dtype), axis=1)


def noisy_backward(dout: A, z: A) -> A:
    """A gradient with a little noise in it (a stochastic estimator left in)."""
    noise = 1e-3 * np.random.default_rng().standard_normal(z.shape)
    return np.asarray(log_softmax_backward(dout, z, axis=1) + noise).astype(z.dtype)


BAD_LOG: tuple[Bad, ...] = (
    Bad(
        "log_of_softmax",
        log_of_softmax_forward,
        correct_backward,
        ("finite_for_finite_input", "matches_reference"),
        ("float64", "float32"),
        kind="log_softmax",
    ),
    Bad(
        "unshifted",
        unshifted_forward,
        None,
        ("finite_for_finite_input", "rows_logsumexp_zero", "matches_reference"),
        ("float64", "float32"),
        kind="log_softmax",
    ),
    Bad(
        "max_not_added_back",
        max_not_added_back_forward,
        None,
        ("entries_nonpositive", "rows_logsumexp_zero", "shift_invariance", "matches_reference"),
        kind="log_softmax",
    ),
    Bad(
        "sliced_sum",
        sliced_forward,
        None,
        ("permutation_equivariance", "rows_logsumexp_zero"),
        kind="log_softmax",
    ),
    Bad(
        "batch_sum",
        batch_sum_forward,
        None,
        ("row_independence", "rows_logsumexp_zero"),
        kind="log_softmax",
    ),
    Bad("upcasting", upcasting_forward, None, ("dtype_preserved",), ("float32",), "log_softmax"),
    Bad("mutating", mutating_forward, None, ("input_not_mutated",), kind="log_softmax"),
    Bad(
        "softmax_vjp",
        correct_forward,
        softmax_vjp_backward,
        ("central_differences", "backward_matches_reference"),
        ("float64", "float32"),
        kind="log_softmax",
    ),
    Bad(
        "forgotten_sum",
        correct_forward,
        forgotten_sum_backward,
        (
            "gradient_rows_sum_to_zero",
            "central_differences",
            "linearity_in_upstream",
            "backward_matches_reference",
        ),
        kind="log_softmax",
    ),
    Bad("dropout", dropout_forward, None, ("deterministic",), kind="log_softmax"),
    Bad("noisy_backward", correct_forward, noisy_backward, ("deterministic",), kind="log_softmax"),
    Bad(
        "abs_sum",
        correct_forward,
        abs_sum_backward,
        ("linearity_in_upstream", "backward_matches_reference"),
        kind="log_softmax",
    ),
)
