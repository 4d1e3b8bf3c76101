r"""Stage localization: which intermediate gradient of a staged backward is wrong.

For a backward that returns the notebook's named stages, each stage is compared
with its true value computed (in float64) from the implementation's *own*
forward cache, in backward order; the first wrong one is reported with the
formula it should compute. Each stage is a chain of at most D + 5 roundings
(D - 1 in the row sum), so by Higham's standard result its error is at most
:math:`\gamma_{D+5}` times the same formula on absolute values, plus :math:`\lambda` times
that for underflow (``tolerances.stage_bound``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from softmax_verify.core.compare import find_mismatch
from softmax_verify.core.errors import InvariantViolation, NotApplicable
from softmax_verify.core.implementation import CACHE_NAMES, Implementation, lookup
from softmax_verify.core.options import Accumulation
from softmax_verify.invariants._cases import Case
from softmax_verify.tolerances import stage_bound

__all__ = ["FORMULAS", "stage_gradients", "true_stages"]

F64 = NDArray[np.float64]

FORMULAS: dict[str, str] = {
    "dexps_0": "dexps_0 = divexps * dout  (direct path of exps into y = exps * divexps)",
    "ddivexps": "ddivexps = rowsum(exps * dout)  (shape (N, 1))",
    "dsexps": "dsexps = -ddivexps / sexps**2  (d(1/s)/ds = -1/s**2)",
    "dexps_1": (
        "dexps_1 = broadcast(dsexps, (N, D))  (row-sum path: d sexps / d exps = 1, "
        "so dsexps is broadcast, not divided by sexps or multiplied by exps)"
    ),
    "dx": "dx = exps * (dexps_0 + dexps_1)  (d exps / d x = exps)",
}


def true_stages(cache: dict[str, F64], dout: F64) -> tuple[dict[str, F64], dict[str, F64]]:
    """Each stage's true value for this cache, and its rounding-error magnitude (abs formula)."""
    exps, sexps, divexps = cache["exps"], cache["sexps"], cache["divexps"]
    values: dict[str, F64] = {}
    scale: dict[str, F64] = {}
    values["dexps_0"], scale["dexps_0"] = divexps * dout, np.abs(divexps * dout)
    values["ddivexps"] = (exps * dout).sum(axis=1, keepdims=True)
    scale["ddivexps"] = np.abs(exps * dout).sum(axis=1, keepdims=True)
    values["dsexps"], scale["dsexps"] = -values["ddivexps"] / sexps**2, scale["ddivexps"] / sexps**2
    values["dexps_1"] = np.broadcast_to(values["dsexps"], dout.shape)
    scale["dexps_1"] = np.broadcast_to(scale["dsexps"], dout.shape)
    values["dx"] = exps * (values["dexps_0"] + values["dexps_1"])
    scale["dx"] = np.abs(exps) * (scale["dexps_0"] + scale["dexps_1"])
    return values, scale


def _cache_arrays(cache: object, rows: int) -> dict[str, F64]:
    found: dict[str, F64] = {}
    for name in CACHE_NAMES:
        value = lookup(cache, name)
        if not isinstance(value, np.ndarray):
            raise NotApplicable(
                "the forward's cache does not expose exps, sexps and divexps by name"
            )
        found[name] = np.array(value, dtype=np.float64)
    for name in ("sexps", "divexps"):
        if found[name].size != rows:
            raise NotApplicable(
                f"cache {name} has {found[name].size} entries, expected one per row"
            )
        found[name] = found[name].reshape(rows, 1)
    return found


def _as_shape(actual: NDArray[Any], shape: tuple[int, ...]) -> F64 | None:
    a = actual.astype(np.float64)
    if a.size == int(np.prod(shape)):
        return a.reshape(shape)
    try:
        return np.broadcast_to(a, shape)
    except ValueError:
        return None


def stage_gradients(impl: Implementation, case: Case, accumulate: Accumulation = "float32") -> None:
    r"""Each named stage equals its true value for the forward's own cache; names the first wrong.

    Stages, in backward order: dexps_0, ddivexps, dsexps, dexps_1, dx (see
    softmax_verify.bundled.staged). Tolerance per entry: :math:`\gamma_{D+5}` times the
    stage's formula on absolute values, plus :math:`\lambda` times that.
    """
    x, dout = case["x"], case["dout"]
    if not impl.has_backward:
        raise NotApplicable("no backward given")
    call = impl.forward(x)
    cache = _cache_arrays(call.cache, x.shape[0])
    back = impl.backward(dout, call.cache)
    named = [s for s in FORMULAS if s in back.stages and s != "dx"]
    if not named:
        raise NotApplicable("the backward does not return named intermediate gradients")
    expected, scale = true_stages(cache, dout.astype(np.float64))
    for stage in FORMULAS:
        if stage not in back.stages:
            continue
        actual = _as_shape(back.stages[stage], expected[stage].shape)
        if actual is None:
            raise InvariantViolation(
                "stage_gradients",
                f"first wrong stage: {stage} has shape {back.stages[stage].shape}, "
                f"expected {expected[stage].shape}; it should compute {FORMULAS[stage]}",
                stage=stage,
                location=impl.source_of(stage),
            )
        tol = stage_bound(scale[stage], x.shape[1], x.dtype, accumulate=accumulate)
        mismatch = find_mismatch(actual, expected[stage], tol, what=f"stage {stage}")
        if mismatch is not None:
            raise InvariantViolation(
                "stage_gradients",
                f"first wrong stage: {stage}; it should compute {FORMULAS[stage]}",
                mismatch=mismatch,
                stage=stage,
                location=impl.source_of(stage),
            )
