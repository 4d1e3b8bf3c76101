"""Known-bad softmax cross-entropy: the catalogue's mistakes, written as people write them,
and one mistake for each invariant that must catch it (tests/invariants/test_cross_entropy.py,
tests/diagnosis/test_cross_entropy_diagnosis.py).

Each is a function ``loss(x, y) -> (loss, dx)`` (the course's shape) unless it says
otherwise; ``y`` is (N,) class indices, or (N, C) rows where the function takes rows.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from ce_styles import Activation_Softmax, softmax_loss
from numpy.typing import NDArray

A = NDArray[Any]


def _rows(x: A) -> A:
    return np.arange(x.shape[0])


def _probs(x: A) -> A:
    shifted = x - x.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    out: A = e / e.sum(axis=1, keepdims=True)
    return out


def _dx(x: A, y: A) -> A:
    dx = _probs(x)
    dx[_rows(x), y] -= 1
    out: A = dx / len(x)
    return out


# --- the catalogue -----------------------------------------------------------------------------


def not_averaged_loss(x: A, y: A) -> tuple[A, A]:
    """gradient_not_averaged: the mean loss, with the gradient of the sum (no /N)."""
    loss, dx = softmax_loss(x, y)
    return loss, dx * x.shape[0]


def averaged_sum_loss(x: A, y: A) -> tuple[A, A]:
    """gradient_not_averaged, the reverse (``--reduction sum``): the summed loss, with dx
    divided by N anyway."""
    loss, dx = softmax_loss(x, y)
    return loss * x.shape[0], dx


def label_indexing_loss(x: A, y: A) -> tuple[A, A]:
    """label_indexing: probs[:, y] is (N, N), every row at every label; the mean over it."""
    probs = _probs(x)
    loss = -np.mean(np.log(probs[:, y]))
    return np.asarray(loss, dtype=x.dtype), _dx(x, y)


def label_indexing_sum_loss(x: A, y: A) -> tuple[A, A]:
    """label_indexing, summed and divided by N: -sum(log_probs[:, y]) / N."""
    shifted = x - x.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return np.asarray(-np.sum(log_probs[:, y]) / len(y), dtype=x.dtype), _dx(x, y)


def no_max_shift_loss(x: A, y: A) -> tuple[A, A]:
    """no_max_shift: log(sum(exp(x))) - x[y]; exp overflows above log(max)."""
    e = np.exp(x)
    loss = np.mean(np.log(e.sum(axis=1)) - x[_rows(x), y])
    dx = e / e.sum(axis=1, keepdims=True)
    dx[_rows(x), y] -= 1
    return np.asarray(loss, dtype=x.dtype), dx / len(x)


def d2l_scratch_loss(x: A, y: A) -> tuple[A, A]:
    """A textbook's from-scratch softmax without the shift, then -log(y_hat[range(n), y]):
    no_max_shift and log_of_softmax at once (named as no_max_shift, whose formula is it)."""
    X_exp = np.exp(x)
    partition = X_exp.sum(1, keepdims=True)
    y_hat = X_exp / partition
    per_row = -np.log(y_hat[range(len(y_hat)), y])
    dx = y_hat.copy()
    dx[range(len(y_hat)), y] -= 1
    return np.asarray(per_row.mean(), dtype=x.dtype), dx / len(x)


def eps_in_log_loss(x: A, y: A) -> tuple[A, A]:
    """clipped_log: -log(p_y + 1e-7), an epsilon inside the log."""
    probs = _probs(x)
    loss = -np.mean(np.log(probs[_rows(x), y] + 1e-7))
    return np.asarray(loss, dtype=x.dtype), _dx(x, y)


def clip_1e12_loss(x: A, y: A) -> tuple[A, A]:
    """clipped_log: np.clip(p, 1e-12, 1 - 1e-12) before the log."""
    clipped = np.clip(_probs(x), 1e-12, 1 - 1e-12)
    loss = -np.mean(np.log(clipped[_rows(x), y]))
    return np.asarray(loss, dtype=x.dtype), _dx(x, y)


class Loss_CategoricalCrossentropy:
    """The "from scratch" book's loss, as printed: clip to [1e-7, 1 - 1e-7], then -log."""

    def calculate(self, output: A, y: A) -> A:
        return np.asarray(np.mean(self.forward(output, y)))

    def forward(self, y_pred: A, y_true: A) -> A:
        samples = len(y_pred)
        y_pred_clipped = np.clip(y_pred, 1e-7, 1 - 1e-7)
        if len(y_true.shape) == 1:
            correct_confidences = y_pred_clipped[range(samples), y_true]
        else:
            correct_confidences = np.sum(y_pred_clipped * y_true, axis=1)
        return np.asarray(-np.log(correct_confidences))


class NnfsBookSoftmaxLoss:
    """The book's Activation_Softmax_Loss_CategoricalCrossentropy as printed: clipped_log in
    the forward, and the argmax of 2-D labels in the backward (wrong for soft labels)."""

    def __init__(self) -> None:
        self.activation = Activation_Softmax()
        self.loss = Loss_CategoricalCrossentropy()

    def forward(self, inputs: A, y_true: A) -> A:
        self.activation.forward(inputs)
        self.output = self.activation.output
        return np.asarray(self.loss.calculate(self.output, y_true), dtype=inputs.dtype)

    def backward(self, dvalues: A, y_true: A) -> None:
        samples = len(dvalues)
        if len(y_true.shape) == 2:
            y_true = np.argmax(y_true, axis=1)
        self.dinputs = dvalues.copy()
        self.dinputs[range(samples), y_true] -= 1
        self.dinputs = self.dinputs / samples


def log_of_softmax_loss(x: A, y: A) -> tuple[A, A]:
    """log_of_softmax: -log(softmax(x)[y]) with the max shift: right until p_y underflows."""
    probs = _probs(x)
    loss = -np.mean(np.log(probs[_rows(x), y]))
    return np.asarray(loss, dtype=x.dtype), _dx(x, y)


def sign_flipped_loss(x: A, y: A) -> tuple[A, A]:
    """loss_sign_flipped: the mean log-likelihood returned; dx the cross-entropy's."""
    loss, dx = softmax_loss(x, y)
    return -loss, dx


# --- one mistake per invariant ---------------------------------------------------------------


def forgot_onehot_loss(x: A, y: A) -> tuple[A, A]:
    """dx = p / N: the one-hot never subtracted (rows of dx sum to 1/N)."""
    loss, _ = softmax_loss(x, y)
    return loss, _probs(x) / len(x)


def float64_loss(x: A, y: A) -> tuple[A, A]:
    """The loss in float64 whatever x's dtype (a np.float64 accumulator kept)."""
    loss, dx = softmax_loss(x.astype(np.float64), y)
    return np.float64(loss), dx.astype(x.dtype)


def in_place_shift_loss(x: A, y: A) -> tuple[A, A]:
    """``x -= x.max(...)``: the caller's logits shifted in place."""
    x -= x.max(axis=1, keepdims=True)
    return softmax_loss(x, y)


def logit_penalty_loss(x: A, y: A) -> tuple[A, A]:
    """A penalty on the logits' size folded into the loss (1e-2 * mean(x^2)), with its
    gradient: a consistent pair, but not the cross-entropy, and not shift invariant."""
    loss, dx = softmax_loss(x, y)
    n, c = x.shape
    return loss + 1e-2 * np.mean(x * x), dx + 2e-2 * x / (n * c)


def first_class_bias_loss(x: A, y: A) -> tuple[A, A]:
    """A bias of 1 left on class 0's logit: the classes are not interchangeable."""
    biased = x.copy()
    biased[:, 0] += 1
    return softmax_loss(biased, y)


def position_weighted_loss(x: A, y: A) -> tuple[A, A]:
    """Later rows weigh more (a discount over positions): the rows are not interchangeable."""
    shifted = x - x.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    n = x.shape[0]
    w = (np.arange(n) + 1) / n * 2 / (n + 1) * n
    loss = -np.sum(w * log_probs[_rows(x), y]) / n
    dx = np.exp(log_probs)
    dx[_rows(x), y] -= 1
    return np.asarray(loss, dtype=x.dtype), dx * (w / n)[:, None]


def noisy_loss(x: A, y: A) -> tuple[A, A]:
    """Unseeded noise in the loss (a dropout of the logits left on at evaluation)."""
    loss, dx = softmax_loss(x, y)
    return loss * (1 + np.random.default_rng().uniform(-1e-2, 1e-2)), dx


def onehot_forgets_mean_loss(x: A, y: A) -> tuple[A, A]:
    """Index labels right; the one-hot branch sums the rows and forgets the mean."""
    loss, dx = softmax_loss(x, y)
    if y.ndim == 2:
        return loss * x.shape[0], dx
    return loss, dx


def squared_upstream_backward(x: A, labels: A, dout: A) -> A:
    """A gradient function taking an upstream, and multiplying by it twice."""
    return np.asarray(_dx(x, labels) * dout * dout, dtype=x.dtype)


def cross_entropy(x: A, labels: A) -> A:
    """The loss half of a pair whose gradient is ``squared_upstream_backward``."""
    return softmax_loss(x, labels)[0]
