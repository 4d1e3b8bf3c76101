"""The catalogue of each kind: its known-wrong forwards and backwards, the probes they are
told apart on, and the invariants a proven formula explains.

- softmax: ``_forward`` and ``_backward``;
- log_softmax: ``_log_forward`` and ``_log_backward`` (and the probes whose probabilities
  underflow, ``_probes.spread_probes``, where ``log(softmax(x))`` shows).

cross_entropy's catalogue probes a ``LossImplementation``, not an ``Implementation``: it is
``_loss`` (its probes ``_loss_probes``, its formulas ``_loss_formulas``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from softmax_verify.core.kinds import Kind
from softmax_verify.diagnosis import _backward, _forward, _log_backward, _log_forward
from softmax_verify.diagnosis._match import Tally, shortest
from softmax_verify.diagnosis._probes import Observation, Probe, large_probes, spread_probes
from softmax_verify.invariants import invariants_for

__all__ = ["CATALOGUES", "Catalogue", "Entry"]

#: A catalogue entry's (id, summary, fix, tally) at one dtype.
Entry = tuple[str, str, str, Tally]


@dataclass(frozen=True)
class Catalogue:
    """One kind's catalogue: ``forward(moderate, large, dtype)`` and ``backward(moderate)``
    give every entry's tally; ``consistent(moderate)`` says whether the backward is right
    for its own forward's output; ``large(dtype)`` the probes beyond the moderate ones; the
    ids are the invariants a proven forward or backward formula explains."""

    forward: Callable[[list[Observation], list[Observation], np.dtype[Any]], list[Entry]]
    backward: Callable[[list[Observation]], list[Entry]]
    consistent: Callable[[list[Observation]], bool]
    large: Callable[[np.dtype[Any]], list[Probe]]
    forward_ids: tuple[str, ...]
    backward_ids: tuple[str, ...]


def _softmax_backward(observations: list[Observation]) -> list[Entry]:
    entries: list[Entry] = [
        (e.id, e.summary, e.fix, _backward.tally_fixed(e.formula, observations))
        for e in _backward.CATALOGUE
    ]
    scaled, k, delta = _backward.tally_scaled(observations)
    flip = " (a sign flip)" if abs(k + 1) <= delta else ""
    entries.append(
        (
            "scaled_backward",
            f"the backward returns k = {shortest(k, delta)} times the true vector-Jacobian "
            f"product{flip}",
            _backward.BACKWARD_FIX,
            scaled,
        )
    )
    return entries


def _softmax_consistent(observations: list[Observation]) -> bool:
    tally = _backward.tally_fixed(_backward.correct, observations)
    return tally.matched and tally.probes > 0


def _ids(kind: Kind) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The forward invariants a forward formula explains (all but the dtype and mutation
    checks, which the calls explain), and the backward ones."""
    invs = invariants_for(kind)
    forward = tuple(
        inv.id
        for inv in invs
        if not inv.needs_backward and inv.id not in ("dtype_preserved", "input_not_mutated")
    )
    return forward, tuple(inv.id for inv in invs if inv.needs_backward)


CATALOGUES: dict[Kind, Catalogue] = {
    "softmax": Catalogue(
        _forward.forward_findings,
        _softmax_backward,
        _softmax_consistent,
        large_probes,
        *_ids("softmax"),
    ),
    "log_softmax": Catalogue(
        _log_forward.forward_findings,
        _log_backward.backward_findings,
        _log_backward.consistent,
        lambda dtype: large_probes(dtype) + spread_probes(dtype),
        *_ids("log_softmax"),
    ),
}
