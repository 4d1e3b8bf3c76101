"""The cross-entropy catalogue's probes, the calls that observe them, and the correct loss.

Probes (deterministic, in the dtype under test, index labels; code that takes label rows
gets their one-hot rows in x's dtype):

- ``moderate``: shapes (3,5) (4,7) (5,3) (2,11) (6,4) (7,9) (4,4), logits N(0, 2), at least
  two distinct classes per batch; N > 1 and N != C on all but one;
- ``large``: rows beyond exp's range: overflowing (x ~ 2 log(max)), underflowing
  (x ~ -2 log(max)) and mixed, (3,5) (4,3) (4,6);
- ``gaps``: single rows [0, -t, -1, -2.5] (N = 1, C = 4) with the label at gap t below the
  maximum, t from 2 to 100 in steps of 2 and then past the dtype's underflow (p_y spans
  0.1 .. 1e-44 in float32, .. 1e-320 and below in float64): per-row losses even from code
  that returns only a batch mean;
- ``confident``: single rows with the label at the maximum, the others 25..60 below
  (p_y = 1 - 1e-11 .. 1 - 1e-26).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from softmax_verify.core import cross_entropy as ce
from softmax_verify.core.errors import ImplementationError
from softmax_verify.core.loss_implementation import LossImplementation, unit_upstream
from softmax_verify.core.options import Reduction
from softmax_verify.tolerances import reference_cross_entropy_loss_bound

__all__ = [
    "DTYPES",
    "LossObservation",
    "LossProbe",
    "OutOfTime",
    "correct_loss",
    "exp_limit",
    "loss_probes",
    "make_probe",
    "observe_all",
    "one_loss",
    "targets_of",
    "underflow_gap",
]

F64 = NDArray[np.float64]

#: The dtypes the catalogue is proven at (tests/diagnosis/test_cross_entropy_diagnosis.py).
DTYPES = ("float32", "float64")
_SEED = 20_251_206
_SMALLEST_SUBNORMAL = {"float32": 2.0**-149, "float64": 2.0**-1074}


class OutOfTime(Exception):
    """The probing budget ran out before every probe was observed."""


@dataclass(frozen=True)
class LossProbe:
    """Logits, index labels, a name and a family; ``correct`` the reference loss and its
    bound, per row and for the mean (``make_probe`` computes them once: every formula's
    tally compares with them)."""

    x: NDArray[Any]
    labels: NDArray[np.int64]
    label: str
    family: str
    correct: dict[bool, tuple[F64, F64]]


def make_probe(x: NDArray[Any], labels: NDArray[np.int64], label: str, family: str) -> LossProbe:
    q = ce.targets(labels, x.shape[1])
    rows = ce.row_losses(x, q)
    correct = {}
    for per_row in (False, True):
        red: Reduction = "none" if per_row else "mean"
        bound = reference_cross_entropy_loss_bound(x, q, rows, x.dtype, red, accumulate="float32")
        correct[per_row] = (ce.reduce(rows, red), bound)
    return LossProbe(x, labels, label, family, correct)


@dataclass(frozen=True)
class LossObservation:
    """A probe and what the code returned on it (None: the call failed)."""

    probe: LossProbe
    loss: F64 | None
    dx: F64 | None


def exp_limit(dt: np.dtype[Any]) -> float:
    """log(max): the largest argument exp does not overflow at."""
    return math.log(float(np.finfo(dt).max))


def underflow_gap(dt: np.dtype[Any]) -> float:
    """The gap t beyond which e^{-t} rounds to 0 in ``dt`` (below half the smallest
    subnormal)."""
    return math.log(2.0) - math.log(_SMALLEST_SUBNORMAL[dt.name])


def _moderate(dt: np.dtype[Any], rng: np.random.Generator) -> list[LossProbe]:
    out = []
    for n, c in ((3, 5), (4, 7), (5, 3), (2, 11), (6, 4), (7, 9), (4, 4)):
        x = rng.normal(0.0, 2.0, (n, c)).astype(dt)
        y = rng.permutation(np.arange(n) % c).astype(np.int64)
        out.append(make_probe(x, y, f"{n}x{c}", "moderate"))
    return out


def _large(dt: np.dtype[Any], rng: np.random.Generator) -> list[LossProbe]:
    far = 2.0 * exp_limit(dt)
    out = []
    for name, (n, c), off in (
        ("overflowing", (3, 5), np.full((3, 1), far)),
        ("underflowing", (4, 3), np.full((4, 1), -far)),
        ("mixed", (4, 6), np.array([[far], [0.0], [-far], [0.0]])),
    ):
        x = (rng.normal(0.0, 1.0, (n, c)) + off).astype(dt)
        out.append(make_probe(x, rng.integers(0, c, n).astype(np.int64), name, "large"))
    return out


def loss_probes(dt: np.dtype[Any]) -> list[LossProbe]:
    """Every probe at ``dt`` (module doc), in a fixed order from a fixed seed."""
    rng = np.random.default_rng(_SEED)
    out = _moderate(dt, rng) + _large(dt, rng)
    top = underflow_gap(dt)
    gaps = [float(t) for t in range(2, 101, 2)] + [top * f for f in (1.02, 1.1, 1.5, 2.0, 4.0)]
    for t in gaps:
        x = np.array([[0.0, -t, -1.0, -2.5]]).astype(dt)
        out.append(make_probe(x, np.array([1], dtype=np.int64), f"gap {t:.4g}", "gaps"))
    for t in (25.0, 30.0, 40.0, 60.0):
        x = np.array([[0.0, -t, -t - 1.0, -t - 0.5]]).astype(dt)
        out.append(make_probe(x, np.array([0], dtype=np.int64), f"confident {t:g}", "confident"))
    return out


def _as_given(impl: LossImplementation, x: NDArray[Any], labels: NDArray[Any]) -> NDArray[Any]:
    """The labels in the form the code takes: index labels, or their one-hot rows in x's
    dtype (also a valid probability row)."""
    if impl.labels == "index":
        return labels
    return ce.targets(labels, x.shape[1]).astype(x.dtype)


def one_loss(impl: LossImplementation, x: NDArray[Any], labels: NDArray[Any]) -> F64 | None:
    """The loss at ``(x, labels)`` in float64 (None if the call fails)."""
    try:
        return np.asarray(impl.loss(x, _as_given(impl, x, labels)).loss, dtype=np.float64)
    except ImplementationError:
        return None


def _observe(impl: LossImplementation, probe: LossProbe) -> LossObservation:
    loss = one_loss(impl, probe.x, probe.labels)
    dx = None
    if loss is not None and impl.has_backward and probe.family == "moderate":
        up = unit_upstream(probe.x.shape[0], impl.reduction, probe.x.dtype)
        try:
            given = _as_given(impl, probe.x, probe.labels)
            dx = np.asarray(impl.grad(probe.x, given, up).dx, dtype=np.float64)
        except ImplementationError:
            dx = None
    return LossObservation(probe, loss, dx)


def observe_all(
    impl: LossImplementation, probes: list[LossProbe], deadline: float
) -> list[LossObservation]:
    """Each probe's observation (dx on the moderate ones only); OutOfTime past ``deadline``."""
    out = []
    for probe in probes:
        if time.monotonic() > deadline:
            raise OutOfTime
        out.append(_observe(impl, probe))
    return out


def targets_of(p: LossProbe) -> F64:
    return ce.targets(p.labels, p.x.shape[1])


def correct_loss(p: LossProbe, per_row: bool) -> tuple[F64, F64]:
    """The reference loss (per row, or the batch mean) and the bound a correct loss meets."""
    return p.correct[per_row]
