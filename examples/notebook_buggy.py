"""A notebook-style staged softmax with the two classic bugs, kept on purpose.

The forward builds the graph in named stages (as a notebook cell would) and
keeps them in a cache; the backward returns every intermediate gradient by
name, so ``softmax-verify`` can say which stage is the first wrong one.

The bugs:

1. the forward takes ``exp(x)`` without subtracting the row maximum, so any
   logit above about 709 (float64) or 88 (float32) overflows to inf and the
   row becomes NaN;
2. the backward's row-sum path computes ``dexps_1 = dsexps / rowsum(exps) * exps``
   instead of broadcasting ``dsexps``: the derivative of ``sexps = rowsum(exps)``
   with respect to each entry of ``exps`` is 1, so nothing should be divided or
   multiplied there.

Verify it (it fails)::

    softmax-verify check examples/notebook_buggy.py

See notebook_fixed.py for the corrected version.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.floating[Any]]


def softmax_forward(x: Array) -> tuple[Array, dict[str, Array]]:
    """Softmax along axis 1 of an (N, D) array; returns ``(y, cache)``."""
    exps = np.exp(x)  # bug 1: no row maximum subtracted
    sexps = np.sum(exps, axis=1, keepdims=True)  # (N, 1)
    divexps = 1 / sexps  # (N, 1)
    y = exps * divexps
    return y, {"exps": exps, "sexps": sexps, "divexps": divexps}


def softmax_backward(dout: Array, cache: dict[str, Array]) -> dict[str, Array]:
    """Every intermediate gradient of ``L = sum(dout * y)``, by name; ``"dx"`` is the input's."""
    exps, sexps, divexps = cache["exps"], cache["sexps"], cache["divexps"]
    grads: dict[str, Array] = {}
    grads["dexps_0"] = divexps * dout  # direct path: y = exps * divexps
    grads["ddivexps"] = np.sum(exps * dout, axis=1, keepdims=True)
    grads["dsexps"] = -grads["ddivexps"] / sexps**2  # d(1/s)/ds = -1/s**2
    # bug 2: the row-sum path divides by the row sum and multiplies by exps
    grads["dexps_1"] = grads["dsexps"] / np.sum(exps, axis=1, keepdims=True) * exps
    grads["dx"] = exps * (grads["dexps_0"] + grads["dexps_1"])  # d exp(x)/dx = exp(x)
    return grads
