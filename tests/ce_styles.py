"""Softmax cross-entropy code in the shapes people write it, correct, and wrong in each shape.

Written the way the sources write them (tests/target/test_loss_conventions.py reads each
without an adapter): a course assignment's ``softmax_loss(x, y) -> (loss, dx)`` (shift,
log-probabilities, a gather, ``dx[range(N), y] -= 1; dx /= N``); the issue's formula as a
loss function with a gradient function; loss layers with each backward shape
(``backward(dout=1)``, ``backward()``, ``backward(x, labels)``, and the "from scratch"
book's combined class with ``backward(dvalues, y_true)`` storing ``self.dinputs``); a loss
method of a classifier class (``module:Class.method``); a per-row loss with an upstream
vector (reduction none); a sequence model's (B, T, C) loss (``--rank 3``); and
deliberately slow-but-correct code whose sums run one term at a time in the dtype (the
worst order there is, near the bounds). Labels are (N,) class indices, or (N, C) rows
where a style takes rows.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

A = NDArray[Any]


def _rows(x: A) -> A:
    return np.arange(x.shape[0])


def _onehot(labels: A, x: A) -> A:
    """2-D labels as they are; index labels as one-hot rows in x's dtype."""
    if labels.ndim == 2:
        return labels.astype(x.dtype)
    out = np.zeros_like(x)
    out[_rows(x), labels] = 1
    return out


# --- functions -------------------------------------------------------------------------------


def softmax_loss(x: A, y: A) -> tuple[A, A]:
    """A course's layers.softmax_loss: shift, log-probabilities, gather; dx = (p - t) / N."""
    shifted_logits = x - np.max(x, axis=1, keepdims=True)
    Z = np.sum(np.exp(shifted_logits), axis=1, keepdims=True)
    log_probs = shifted_logits - np.log(Z)
    probs = np.exp(log_probs)
    N = x.shape[0]
    if y.ndim == 1:
        loss = -np.sum(log_probs[np.arange(N), y]) / N
        dx = probs.copy()
        dx[np.arange(N), y] -= 1
    else:
        loss = -np.sum(y * log_probs) / N
        dx = probs * y.sum(axis=1, keepdims=True) - y
    dx /= N
    return loss, dx


def lse_loss(x: A, labels: A) -> A:
    """The issue's formula as written: logsumexp(x) - <t, x>, the mean over the batch."""
    m = x.max(axis=1, keepdims=True)
    lse = m[:, 0] + np.log(np.exp(x - m).sum(axis=1))
    target = _onehot(labels, x)
    return np.asarray(np.mean(lse - (target * x).sum(axis=1)), dtype=x.dtype)


def lse_grad(x: A, labels: A) -> A:
    """The gradient function of lse_loss: (softmax(x) - t) / N."""
    e = np.exp(x - x.max(axis=1, keepdims=True))
    p = e / e.sum(axis=1, keepdims=True)
    return np.asarray((p - _onehot(labels, x)) / x.shape[0], dtype=x.dtype)


def lse_grad_without_onehot(x: A, labels: A) -> A:
    """Wrong: dx = softmax(x) / N, the one-hot never subtracted."""
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return np.asarray(e / e.sum(axis=1, keepdims=True) / x.shape[0], dtype=x.dtype)


def sum_loss(x: A, y: A) -> tuple[A, A]:
    """softmax_loss with reduction sum: the loss and dx not divided by N. Correct at float32
    and float64 (and bfloat16); in float16 the mean's dx times N loses its small entries to
    subnormals (``ce_half_impls.half_sum_from_mean``)."""
    loss, dx = softmax_loss(x, y)
    return loss * x.shape[0], dx * x.shape[0]


def not_averaged_loss(x: A, y: A) -> tuple[A, A]:
    """Wrong: the mean loss, with the gradient of the sum (the /N forgotten)."""
    loss, dx = softmax_loss(x, y)
    return loss, dx * x.shape[0]


# --- loss layers -----------------------------------------------------------------------------


class SoftmaxCrossEntropy:
    """forward(x, labels) returns the loss; backward(dout=1.0) returns dx."""

    def forward(self, x: A, labels: A) -> A:
        shifted = x - x.max(axis=1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        self.probs = np.exp(log_probs)
        self.target = _onehot(labels, x)
        self.n = x.shape[0]
        return np.asarray(-(self.target * log_probs).sum() / self.n, dtype=x.dtype)

    def backward(self, dout: Any = 1.0) -> A:
        return np.asarray(dout * (self.probs - self.target) / self.n, dtype=self.probs.dtype)


class UpstreamIgnoringCrossEntropy(SoftmaxCrossEntropy):
    """Wrong: the backward takes an upstream and never uses it."""

    def backward(self, dout: Any = 1.0) -> A:
        return np.asarray((self.probs - self.target) / self.n, dtype=self.probs.dtype)


class CrossEntropyWithProbs:
    """forward(x, labels) returns (loss, probs); backward() takes nothing."""

    def forward(self, x: A, labels: A) -> tuple[A, A]:
        m = x.max(axis=-1, keepdims=True)
        e = np.exp(x - m)
        s = e.sum(axis=-1, keepdims=True)
        self.p = e / s
        self.y = labels
        if labels.ndim == 1:
            picked = x[_rows(x), labels][:, None]
            per_row = (m - picked) + np.log(s)  # logsumexp - x[y], shifted
        else:
            per_row = (labels * ((m - x) + np.log(s))).sum(axis=-1)
        return np.asarray(per_row.mean(), dtype=x.dtype), self.p

    def backward(self) -> A:
        dx = self.p.copy()
        if self.y.ndim == 1:
            dx[_rows(dx), self.y] -= 1
        else:
            dx -= self.y
        out: A = dx / dx.shape[0]
        return out


class InPlaceCrossEntropy(CrossEntropyWithProbs):
    """Wrong: the backward subtracts the one-hot from the stored probabilities in place, so
    its forward's cache is spent after one call."""

    def backward(self) -> A:
        self.p[_rows(self.p), self.y] -= 1
        out: A = self.p / self.p.shape[0]
        return out


class StoredCrossEntropy:
    """forward stores self.loss (returns nothing); backward(x, labels) gets the inputs again."""

    def forward(self, x: A, labels: A) -> None:
        shifted = x - x.max(axis=1, keepdims=True)
        lse = np.log(np.exp(shifted).sum(axis=1))
        target = _onehot(labels, x)
        self.loss = np.asarray(np.mean(lse - (target * shifted).sum(axis=1)), dtype=x.dtype)

    def backward(self, x: A, labels: A) -> A:
        e = np.exp(x - x.max(axis=1, keepdims=True))
        p = e / e.sum(axis=1, keepdims=True)
        return np.asarray((p - _onehot(labels, x)) / len(x), dtype=x.dtype)


class ClassCountCrossEntropy(StoredCrossEntropy):
    """Wrong: the backward divides by the number of classes where N belongs."""

    def backward(self, x: A, labels: A) -> A:
        e = np.exp(x - x.max(axis=1, keepdims=True))
        p = e / e.sum(axis=1, keepdims=True)
        return np.asarray((p - _onehot(labels, x)) / x.shape[1], dtype=x.dtype)


class Activation_Softmax:
    def forward(self, inputs: A) -> None:
        exp_values = np.exp(inputs - np.max(inputs, axis=1, keepdims=True))
        self.output = exp_values / np.sum(exp_values, axis=1, keepdims=True)


class Activation_Softmax_Loss_CategoricalCrossentropy:
    """The "from scratch" book's combined class, its loss taken from the logits by
    log-sum-exp (the book's clips the probabilities: tests/bad_ce_impls.py); backward(dvalues,
    y_true) gets the probabilities back and stores self.dinputs."""

    def __init__(self) -> None:
        self.activation = Activation_Softmax()

    def forward(self, inputs: A, y_true: A) -> A:
        self.activation.forward(inputs)
        self.output = self.activation.output
        shifted = inputs - np.max(inputs, axis=1, keepdims=True)
        log_probs = shifted - np.log(np.sum(np.exp(shifted), axis=1, keepdims=True))
        if len(y_true.shape) == 1:
            sample_losses = -log_probs[range(len(inputs)), y_true]
        else:
            sample_losses = -np.sum(log_probs * y_true, axis=1)
        return np.asarray(np.mean(sample_losses), dtype=inputs.dtype)

    def backward(self, dvalues: A, y_true: A) -> None:
        samples = len(dvalues)
        self.dinputs = dvalues.copy()
        if len(y_true.shape) == 1:
            self.dinputs[range(samples), y_true] -= 1
        else:
            self.dinputs = self.dinputs * y_true.sum(axis=1, keepdims=True) - y_true
        self.dinputs = self.dinputs / samples


class SoftmaxClassifier:
    """``tests/ce_styles.py:SoftmaxClassifier.loss``: a method of a class built with no
    arguments, delegating to the course's function."""

    def loss(self, scores: A, y: A) -> tuple[A, A]:
        return softmax_loss(scores, y)

    def flipped_loss(self, scores: A, y: A) -> tuple[A, A]:
        """Wrong: the mean log-likelihood (the sign of the loss lost), the right gradient."""
        loss, dx = softmax_loss(scores, y)
        return -loss, dx


class RowLosses:
    """reduction none: forward returns the rows' losses (N,); backward(dout) takes the upstream
    vector of N."""

    def forward(self, logits: A, targets: A) -> A:
        shifted = logits - logits.max(axis=1, keepdims=True)
        s = np.exp(shifted).sum(axis=1, keepdims=True)
        self.probs = np.exp(shifted) / s
        self.targets = targets
        rows: A = np.log(s[:, 0]) - shifted[_rows(logits), targets]
        return rows

    def backward(self, dout: A) -> A:
        dx = self.probs.copy()
        dx[_rows(dx), self.targets] -= 1
        out: A = dx * dout[:, None]
        return out


def sequence_loss(logits: A, targets: A) -> tuple[A, A]:
    """A sequence model's loss: logits (B, T, C), targets (B, T), the mean over B * T
    positions (``--rank 3``)."""
    b, t, c = logits.shape
    loss, dx = softmax_loss(logits.reshape(b * t, c), targets.reshape(b * t))
    return loss, dx.reshape(b, t, c)


def sequence_loss_per_sequence_mean(logits: A, targets: A) -> tuple[A, A]:
    """Wrong: the mean over the time steps of each sequence, summed over the batch: the
    gradient is B times the mean's."""
    b, t, c = logits.shape
    loss, dx = softmax_loss(logits.reshape(b * t, c), targets.reshape(b * t))
    return loss, (dx * b).reshape(b, t, c)


# --- correct, near the bounds: sums one term at a time, in the dtype --------------------------


def _seq(a: A, axis: int) -> A:
    """Sum along ``axis`` one term at a time, in a's dtype (cumsum adds in order)."""
    out: A = np.cumsum(a, axis=axis, dtype=a.dtype).take(-1, axis=axis)
    return out


def sequential_lse_loss(x: A, labels: A) -> A:
    """lse - <t, x> with every sum sequential in the dtype: the row sum of exps, the dot
    product with t, and the batch sum."""
    m = x.max(axis=1, keepdims=True)
    s = _seq(np.exp(x - m), 1)
    lse = m[:, 0] + np.log(s)
    rows = lse - _seq(_onehot(labels, x) * x, 1)
    out: A = np.asarray(_seq(rows, 0) / x.shape[0], dtype=x.dtype)
    return out


def sequential_grad(x: A, labels: A) -> A:
    """(softmax(x) - t) / N with the row sum sequential in the dtype."""
    e = np.exp(x - x.max(axis=1, keepdims=True))
    p = e / _seq(e, 1)[:, None]
    return np.asarray((p - _onehot(labels, x)) / x.shape[0], dtype=x.dtype)
