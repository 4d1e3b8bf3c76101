r"""The notebook's staged softmax graph, written correctly and stably.

The graph, for an (N, D) input and rows as distributions::

    exps    = exp(x - rowmax(x))          (N, D)   shifted: never overflows
    sexps   = rowsum(exps)                (N, 1)
    divexps = 1 / sexps                   (N, 1)
    y       = exps * divexps              (N, D)

Backward, for an upstream gradient ``dout`` of ``L = sum(dout * y)``; ``exps``
reaches ``y`` along two paths (the direct product and the row sum), so its
gradient is the sum of two terms::

    dexps_0  = divexps * dout                      (N, D)  direct path
    ddivexps = rowsum(exps * dout)                 (N, 1)
    dsexps   = -ddivexps / sexps**2                (N, 1)
    dexps_1  = broadcast(dsexps, (N, D))           (N, D)  row-sum path: d sexps / d exps = 1
    dx       = exps * (dexps_0 + dexps_1)          (N, D)  d exps / d x = exps

The row maximum is treated as a constant: y does not depend on it, so its
gradient contribution is exactly zero. A classic mistake is
``dexps_1 = dsexps / rowsum(exps) * exps``, which gives ``y * (1 - y)`` instead of 0
for an all-ones ``dout``; ``softmax_verify`` names that stage when it sees it.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from softmax_verify.core.implementation import STAGE_NAMES
from softmax_verify.core.validate import as_float_array, as_matrix, check_same_shape

__all__ = ["STAGE_NAMES", "StagedCache", "StagedGradients", "staged_backward", "staged_forward"]

FloatArray = NDArray[np.floating[Any]]


class StagedCache(NamedTuple):
    """What the forward keeps for the backward (the notebook's cache, by name)."""

    exps: FloatArray
    sexps: FloatArray
    divexps: FloatArray


class StagedGradients(NamedTuple):
    """Every intermediate gradient of the staged backward, by the notebook's names."""

    dexps_0: FloatArray
    ddivexps: FloatArray
    dsexps: FloatArray
    dexps_1: FloatArray
    dx: FloatArray


def staged_forward(x: FloatArray) -> tuple[FloatArray, StagedCache]:
    """Return ``(y, cache)`` for an (N, D) array, softmax along axis 1."""
    array = as_matrix(x, "x")
    with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        exps = np.exp(array - array.max(axis=1, keepdims=True))
        sexps = exps.sum(axis=1, keepdims=True)
        divexps = 1 / sexps
        y = exps * divexps
    return y, StagedCache(exps=exps, sexps=sexps, divexps=divexps)


def staged_backward(dout: FloatArray, cache: StagedCache) -> StagedGradients:
    """Return every stage's gradient for ``L = sum(dout * y)``; ``.dx`` is the input gradient."""
    if not isinstance(cache, StagedCache):
        raise TypeError(
            f"cache must be the StagedCache returned by staged_forward, got {type(cache).__name__}"
        )
    g = as_matrix(dout, "dout")
    exps = as_matrix(cache.exps, "cache.exps")
    check_same_shape(g, "dout", exps, "cache.exps")
    rows = (exps.shape[0], 1)
    stages = []
    for name in ("sexps", "divexps"):
        stage = as_float_array(getattr(cache, name), f"cache.{name}")
        if stage.shape != rows:
            raise ValueError(f"cache.{name} must have shape {rows}, got {stage.shape}")
        if stage.dtype != exps.dtype:
            raise TypeError(
                f"cache.{name} must have the same dtype as cache.exps: "
                f"got {stage.dtype} and {exps.dtype}"
            )
        stages.append(stage)
    sexps, divexps = stages
    with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        dexps_0 = divexps * g
        ddivexps = (exps * g).sum(axis=1, keepdims=True)
        dsexps = -ddivexps / sexps**2
        dexps_1 = np.broadcast_to(dsexps, g.shape).copy()
        dx = exps * (dexps_0 + dexps_1)
    return StagedGradients(dexps_0, ddivexps, dsexps, dexps_1, dx)
