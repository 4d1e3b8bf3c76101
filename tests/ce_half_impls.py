"""Hand-written half-precision cross-entropy, as a kernel's author writes it in numpy: every op
in x's dtype, the sums accumulated in it (checked under ``accumulate="input"``), right and
wrong."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["half_loss", "half_loss_unshifted", "half_sum_from_mean", "half_sum_loss"]

A = NDArray[Any]


def _reduced(e: A, x: A, y: A) -> tuple[A, A]:
    """The loss and dx from the exponentials ``e`` of the (shifted or not) logits ``x``."""
    n, half = x.shape[0], x.dtype.type
    s = np.add.reduce(e, axis=1, keepdims=True, dtype=x.dtype)  # summed in half
    rows = np.log(s)[:, 0] - x[np.arange(n), y]
    loss = np.add.reduce(rows, dtype=x.dtype) / half(n)
    p = e / s
    p[np.arange(n), y] -= half(1)
    return np.asarray(loss, dtype=x.dtype), (p / half(n)).astype(x.dtype)


def half_loss(x: A, y: A) -> tuple[A, A]:
    """Softmax cross-entropy (mean) and dx in x's half dtype: shift, exp, sum, log, gather."""
    shifted = x - x.max(axis=1, keepdims=True)
    return _reduced(np.exp(shifted), shifted, y)


def half_loss_unshifted(x: A, y: A) -> tuple[A, A]:
    """The same without the max shift: float16's exp overflows above 11.09, so the loss is
    inf (or NaN) for logits a softmax takes without trouble."""
    return _reduced(np.exp(x), x, y)


def half_sum_loss(x: A, y: A) -> tuple[A, A]:
    """The sum loss and its dx in x's half dtype, formed directly: p - onehot, no /N."""
    n = x.shape[0]
    shifted = x - x.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    s = np.add.reduce(e, axis=1, keepdims=True, dtype=x.dtype)
    rows = np.log(s)[:, 0] - shifted[np.arange(n), y]
    p = e / s
    p[np.arange(n), y] -= x.dtype.type(1)
    return np.asarray(np.add.reduce(rows, dtype=x.dtype), dtype=x.dtype), p.astype(x.dtype)


def half_sum_from_mean(x: A, y: A) -> tuple[A, A]:
    """Loses accuracy in float16: the sum's dx as the mean's times N. Dividing by N first
    puts entries below 6e-5 into float16's subnormals (absolute spacing 6e-8), and the
    product by N scales that spacing up N times: a relative error of 20 % and more on the
    small entries, which no chain of independent roundings gives (tests/invariants)."""
    loss, dx = half_loss(x, y)
    n = x.dtype.type(x.shape[0])
    return np.asarray(loss * n, dtype=x.dtype), (dx * n).astype(x.dtype)
