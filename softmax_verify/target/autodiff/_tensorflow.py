"""TensorFlow (``--autodiff tensorflow``): the backward is ``tf.GradientTape``.

A function of a tensor: TensorFlow's own (``tf.nn.softmax``, ``tf.nn.log_softmax``,
recognised by their module), a ``tf.function`` (recognised by its type), or the
user's, written with tf ops or ``keras.ops`` on keras's tensorflow backend. The forward
is ``fn(tf.constant(x))``, which keeps x's dtype; the backward recomputes it under a
tape that watches x and asks for the gradient with the upstream given in y's dtype
(a keras layer's float32 output takes a float32 upstream), so nothing of the graph
outlives a call. A tape finds no gradient, rather than raising, when the forward left
TensorFlow (``.numpy()``, ``np.exp``): the backward then says so.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
from numpy.typing import NDArray

from softmax_verify.target.autodiff._base import (
    Adapted,
    AutodiffForward,
    Library,
    import_library,
    target_name,
)

__all__ = ["LIBRARY"]


def _kind(target: object) -> str | None:
    tf = sys.modules.get("tensorflow")
    if tf is None:
        return None
    if isinstance(target, tf.types.experimental.PolymorphicFunction):
        return "tf.function"
    return None


def _adapt(target: Any, device: str) -> Adapted:
    tf = import_library("tensorflow")

    def forward(x: NDArray[Any]) -> tuple[Any, NDArray[Any]]:
        saved = np.array(x, copy=True)  # the backward's x, whatever the code does to its own
        return target(tf.constant(x)), saved

    def backward(dout: NDArray[Any], saved: NDArray[Any]) -> Any:
        xt = tf.constant(saved)
        with tf.GradientTape() as tape:
            tape.watch(xt)
            y = target(xt)
        if not tf.is_tensor(y):
            raise TypeError(
                f"the target returned {type(y).__name__}; tf.GradientTape needs a tf.Tensor"
            )
        dx = tape.gradient(y, xt, output_gradients=tf.constant(dout, dtype=y.dtype))
        if dx is None:
            raise ValueError(
                "tf.GradientTape found no gradient from the output to x: the forward left "
                "TensorFlow (.numpy(), numpy functions) or does not depend on x"
            )
        return tf.convert_to_tensor(dx)

    kind = _kind(target) or "tensorflow function"
    how = f"{kind} {target_name(target)}; backward by tf.GradientTape"
    return Adapted(AutodiffForward(forward, how, target_name(target)), backward, how)


LIBRARY = Library("tensorflow", ("tensorflow",), _kind, _adapt)
