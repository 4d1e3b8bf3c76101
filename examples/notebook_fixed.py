"""The notebook-style staged softmax of notebook_buggy.py, with both bugs fixed.

1. The forward subtracts each row's maximum before ``exp``: softmax does not
   change (it is shift invariant) and no ``exp`` argument is positive, so
   nothing overflows. The maximum is a constant for the backward: ``y`` does not
   depend on it, so it contributes no gradient.
2. The backward's row-sum path broadcasts ``dsexps`` over the row, because
   ``d sexps / d exps_ij = 1``.

Verify it (every invariant passes)::

    softmax-verify check examples/notebook_fixed.py
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.floating[Any]]


def softmax_forward(x: Array) -> tuple[Array, dict[str, Array]]:
    """Softmax along axis 1 of an (N, D) array; returns ``(y, cache)``."""
    exps = np.exp(x - np.max(x, axis=1, keepdims=True))  # every argument <= 0
    sexps = np.sum(exps, axis=1, keepdims=True)  # (N, 1), at least 1
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
    grads["dexps_1"] = np.broadcast_to(grads["dsexps"], exps.shape).copy()  # d sexps/d exps = 1
    grads["dx"] = exps * (grads["dexps_0"] + grads["dexps_1"])  # d exp(x - m)/dx = exp(x - m)
    return grads
