"""Softmax cross-entropy written with jax ops: a ``jax.custom_vjp`` loss (correct, and with
the sign of its gradient flipped) and a loss for ``--autodiff jax``."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

_config: Any = jax.config  # untyped in jax's stubs
_config.update("jax_enable_x64", True)


def _rows(logits: Any, labels: Any) -> Any:
    log_probs = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.take_along_axis(log_probs, labels[:, None], axis=1)[:, 0]


@jax.custom_vjp
def cross_entropy(logits: Any, labels: Any) -> Any:
    """The mean loss over the batch, index labels; its VJP written by hand."""
    return jnp.mean(_rows(logits, labels))


def _fwd(logits: Any, labels: Any) -> Any:
    return cross_entropy(logits, labels), (logits, labels)


def _bwd(res: Any, g: Any) -> Any:
    logits, labels = res
    p = jax.nn.softmax(logits, axis=-1)
    target = jax.nn.one_hot(labels, logits.shape[-1], dtype=logits.dtype)
    return g * (p - target) / logits.shape[0], None


cross_entropy.defvjp(_fwd, _bwd)


@jax.custom_vjp
def flipped_cross_entropy(logits: Any, labels: Any) -> Any:
    """Wrong: the VJP of the log-likelihood, the negative of the loss's."""
    return jnp.mean(_rows(logits, labels))


def _flipped_bwd(res: Any, g: Any) -> Any:
    dx, none = _bwd(res, g)
    return -dx, none


flipped_cross_entropy.defvjp(_fwd, _flipped_bwd)


def log_softmax_loss(logits: Any, labels: Any) -> Any:
    """For ``--autodiff jax``: the mean of -log_softmax at the label."""
    return jnp.mean(_rows(logits, labels))
