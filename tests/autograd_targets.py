"""Softmax written with HIPS autograd, as its users write it (autograd has none of its own):
the max shift, the log_softmax of its examples (x - logsumexp(x)), and one without the
shift."""

from __future__ import annotations

from typing import Any

import autograd.numpy as anp
from autograd.scipy.special import logsumexp


def autograd_softmax(x: Any) -> Any:
    """Right in value; autograd's gradient of anp.max is float64 for a float32 x."""
    e = anp.exp(x - anp.max(x, axis=1, keepdims=True))
    return e / anp.sum(e, axis=1, keepdims=True)


def autograd_log_softmax(x: Any) -> Any:
    """autograd's examples/neural_net.py: x - logsumexp(x), which cancels for large x."""
    return x - logsumexp(x, axis=1, keepdims=True)


def unshifted_softmax(x: Any) -> Any:
    """No max shift: inf / inf once exp overflows."""
    e = anp.exp(x)
    return e / anp.sum(e, axis=1, keepdims=True)
