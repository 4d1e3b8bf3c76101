"""The inputs a diagnosis probes the implementation on, and what it returned on each.

Probes are deterministic (a fixed seed), in the dtype under test, and cover what a
formula has to be told apart on: non-square shapes, N > 1, D > 2, a square one, and
rows with one dominant logit (probabilities near 0 and near 1). The failures'
counterexamples are probes too. Every call goes through ``Implementation``, so the
code under test only ever sees copies.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from softmax_verify.core.dtypes import finfo
from softmax_verify.core.errors import CallTimeout, ImplementationError
from softmax_verify.core.implementation import Implementation
from softmax_verify.core.oracle import softmax as exact

__all__ = ["Observation", "Probe", "large_probes", "moderate_probes", "observe", "spread_probes"]

F64 = NDArray[np.float64]
SEED = 20_251_201
#: Moderate probes: every shape is non-square except (4, 4); all have N > 1 and D > 2.
SHAPES: tuple[tuple[int, int], ...] = ((3, 5), (4, 7), (5, 3), (2, 11), (6, 4), (7, 9), (4, 4))
#: Shapes of the peaked probes (one dominant logit per row).
PEAKED: tuple[tuple[int, int], ...] = ((3, 6), (5, 4), (2, 9))


@dataclass(frozen=True)
class Probe:
    """One input: logits ``x`` and an upstream ``dout`` of the same shape and dtype."""

    x: NDArray[Any]
    dout: NDArray[Any]
    label: str


@dataclass(frozen=True)
class Observation:
    """What the implementation returned on one probe (float64 copies; None when it raised)."""

    probe: Probe
    y: F64 | None
    y_dtype: np.dtype[Any] | None
    mutated_x: bool
    dx: F64 | None = None
    dx_dtype: np.dtype[Any] | None = None
    mutated_dout: bool = False
    mutated_cache: bool = False

    @property
    def reference(self) -> F64:
        return exact(self.probe.x)

    @property
    def finite_y(self) -> bool:
        return self.y is not None and bool(np.isfinite(self.y).all())


def moderate_probes(dtype: np.dtype[Any], counterexamples: list[dict[str, Any]]) -> list[Probe]:
    """The fixed probes (|x| of a few units), a peaked one, then usable counterexamples."""
    rng = np.random.default_rng(SEED)
    probes = []
    for shape in SHAPES:
        probes.append(
            Probe(
                rng.normal(0.0, 2.0, shape).astype(dtype),
                rng.normal(0.0, 1.0, shape).astype(dtype),
                f"{shape[0]}x{shape[1]}",
            )
        )
    # One dominant and one far logit per row: probabilities within 1e-10 of 1 and below 1e-20.
    for n, d in PEAKED:
        peaked = rng.normal(0.0, 1.0, (n, d))
        peaked[np.arange(n), np.arange(n) % d] += 25.0
        peaked[np.arange(n), (np.arange(n) + 1) % d] -= 25.0
        upstream = rng.normal(0.0, 1.0, (n, d)).astype(dtype)
        probes.append(Probe(peaked.astype(dtype), upstream, f"peaked {n}x{d}"))
    for i, case in enumerate(counterexamples):
        x: Any = case.get("x")
        if not (isinstance(x, np.ndarray) and x.ndim == 2 and x.dtype == dtype and x.size):
            continue
        if x.size > 4096 or not np.isfinite(x).all():
            continue
        dout: Any = case.get("dout", case.get("u"))
        if not (isinstance(dout, np.ndarray) and dout.shape == x.shape and dout.dtype == dtype):
            dout = np.asarray(rng.normal(0.0, 1.0, x.shape)).astype(dtype)
        probes.append(Probe(x.copy(), dout.copy(), f"counterexample {i + 1}"))
    return probes


def exp_limit(dtype: np.dtype[Any]) -> float:
    """``log(max)`` of ``dtype``: beyond it ``exp`` overflows (about 709.8 and 88.7)."""
    return math.log(float(finfo(dtype).max))


def large_probes(dtype: np.dtype[Any]) -> list[Probe]:
    """Rows beyond the range of exp: shifted up past overflow, down past underflow, mixed."""
    rng = np.random.default_rng(SEED + 1)
    far = 2.0 * exp_limit(dtype)
    probes = []
    for label, shape, offset in (
        ("overflowing", (3, 5), np.full((3, 1), far)),
        ("underflowing", (4, 3), np.full((4, 1), -far)),
        ("mixed", (4, 6), np.array([[far], [0.0], [-far], [0.0]])),
    ):
        x = (rng.normal(0.0, 1.0, shape) + offset).astype(dtype)
        probes.append(Probe(x, rng.normal(0.0, 1.0, shape).astype(dtype), label))
    return probes


def spread_probes(dtype: np.dtype[Any]) -> list[Probe]:
    """Rows with entries so far below their maximum that their probabilities underflow the
    dtype (below a quarter of its smallest subnormal), the others moderate: where the log of a
    softmax is -inf and log_softmax is finite. Three shapes, N > 1 and D > 2."""
    rng = np.random.default_rng(SEED + 4)
    info = finfo(dtype)
    far = 1.25 * (math.log(4) - math.log(float(info.smallest_subnormal)))
    probes = []
    for n, d in ((3, 5), (2, 7), (4, 6)):
        x = rng.normal(0.0, 1.0, (n, d))
        for row in range(n):
            x[row, (row + np.arange(2)) % d] -= far * (1 + 0.1 * np.arange(2))
        probes.append(
            Probe(x.astype(dtype), rng.normal(0.0, 1.0, (n, d)).astype(dtype), f"spread {n}x{d}")
        )
    return probes


def observe(impl: Implementation, probe: Probe) -> Observation:
    """Call the forward (and backward, with the forward's cache) on one probe.

    A call that overran its time limit is raised (CallTimeout): every further probe
    could wait as long, so the caller stops probing.
    """
    try:
        fwd = impl.forward(probe.x)
    except CallTimeout:
        raise
    except ImplementationError:
        return Observation(probe, None, None, False)
    y = fwd.y.astype(np.float64)
    if not impl.has_backward:
        return Observation(probe, y, fwd.y.dtype, fwd.mutated_input)
    try:
        back = impl.backward(probe.dout, fwd.cache)
    except CallTimeout:
        raise
    except ImplementationError:
        return Observation(probe, y, fwd.y.dtype, fwd.mutated_input)
    return Observation(
        probe,
        y,
        fwd.y.dtype,
        fwd.mutated_input,
        back.dx.astype(np.float64),
        back.dx.dtype,
        back.mutated_dout,
        back.mutated_cache,
    )
