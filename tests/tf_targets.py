"""Softmax written with TensorFlow ops, as its users write it: tf ops, a tf.function, a
tf.custom_gradient right and wrong, and a forward that leaves TensorFlow."""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf


def tf_softmax(x: Any) -> Any:
    """The max shift, then exp over the row sum: right at every dtype."""
    e = tf.exp(x - tf.reduce_max(x, axis=-1, keepdims=True))
    return e / tf.reduce_sum(e, axis=-1, keepdims=True)


@tf.function
def compiled_softmax(x: Any) -> Any:
    """A tf.function: recognised by its type, traced once per shape."""
    return tf.nn.softmax(x, axis=-1)


@tf.custom_gradient
def custom_softmax(x: Any) -> Any:
    """A hand-written gradient, right: y * (g - <g, y>)."""
    y = tf.nn.softmax(x, axis=-1)

    def grad(g: Any) -> Any:
        return y * (g - tf.reduce_sum(g * y, axis=-1, keepdims=True))

    return y, grad


@tf.custom_gradient
def diagonal_softmax(x: Any) -> Any:
    """A hand-written gradient, wrong: the Jacobian's diagonal alone, y * (1 - y) * g."""
    y = tf.nn.softmax(x, axis=-1)

    def grad(g: Any) -> Any:
        return y * (1 - y) * g

    return y, grad


def through_numpy(x: Any) -> Any:
    """A right forward that leaves TensorFlow: a tape finds no gradient through it."""
    a = x.numpy()
    e = np.exp(a - a.max(axis=-1, keepdims=True))
    return tf.constant(e / e.sum(axis=-1, keepdims=True))


def unshifted_log_softmax(x: Any) -> Any:
    """log(softmax) without the max shift: -inf and NaN once exp overflows or underflows."""
    e = tf.exp(x)
    return tf.math.log(e / tf.reduce_sum(e, axis=-1, keepdims=True))
