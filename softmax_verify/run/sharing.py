"""Invariants that draw the same cases, checked on one stream of examples.

Invariants built from the same case strategy (``Invariant.build``) see the very same
examples under a derandomized profile: Hypothesis seeds a property from its test
function, which is the same for every invariant (``runner._property``). Drawing those
examples once for all of them, and checking each on every one, gives each invariant
the verdict it gets alone, for the cost of one property: drawing and Hypothesis's own
bookkeeping are most of a property's time. Under a random profile each still sees as
many examples, drawn from the same distribution.

``Members`` is what that one property checks, and under which half-precision accumulation
model (``Options.accumulate``, passed to each member's check). When a member fails,
Hypothesis shrinks towards the smallest case on which any member fails; the member failing
on that case (the first in report order) is the one the failure is reported for, with that
case, which is minimal for it too (any smaller case failing it would fail the group). The
runner then runs the property again without it, so that each member gets its own verdict
and each failure its own minimal case.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from softmax_verify.core.errors import NotApplicable
from softmax_verify.core.implementation import Implementation
from softmax_verify.core.loss_implementation import LossImplementation
from softmax_verify.core.options import ACCUMULATIONS, Accumulation
from softmax_verify.invariants import Case, Invariant

__all__ = ["Members", "shared_groups"]


def shared_groups(
    pairs: Iterable[tuple[Invariant[Any], np.dtype[Any]]],
) -> list[tuple[np.dtype[Any], list[Invariant[Any]]]]:
    """``pairs`` (invariant, dtype) gathered by dtype and case strategy, each group in the
    order of its first pair, its members in their order."""
    groups: dict[tuple[Any, np.dtype[Any]], list[Invariant[Any]]] = {}
    for inv, dtype in pairs:
        groups.setdefault((inv.build, dtype), []).append(inv)
    return [(dtype, members) for (_, dtype), members in groups.items()]


class Members:
    """The invariants one property checks on each case, with what happened to each.

    ``check`` runs every member still live on the case, in order, each under the
    ``accumulate`` model (ValueError at once for an unknown one). A member that says it
    does not apply (``NotApplicable``) leaves the group for good, as it would end a
    property of its own; when none is left, that ``NotApplicable`` ends the property.
    """

    def __init__(self, invariants: Sequence[Invariant[Any]], accumulate: Accumulation) -> None:
        if accumulate not in ACCUMULATIONS:  # before any case, not inside a check
            raise ValueError(
                f"accumulate must be one of {', '.join(ACCUMULATIONS)}; got {accumulate!r}"
            )
        self.live = list(invariants)
        #: The half-precision accumulation model every member's tolerances assume.
        self.accumulate: Accumulation = accumulate
        self.members = tuple(invariants)
        #: Cases each member was checked on, shrinking's replays included.
        self.examples = dict.fromkeys((inv.id for inv in invariants), 0)
        #: Seconds spent in each member's own check.
        self.own = dict.fromkeys((inv.id for inv in invariants), 0.0)
        self.skipped: dict[str, str] = {}
        #: The member being checked (the one that raised, when an exception leaves ``check``).
        self.current = self.live[0]
        #: The first member that failed at all: a failure that did not happen again is its.
        self.first_failed: Invariant[Any] | None = None

    def check(self, impl: Implementation | LossImplementation, case: Case) -> None:
        for inv in tuple(self.live):
            self.current = inv
            self.examples[inv.id] += 1
            start = time.perf_counter()
            try:
                inv.check(impl, case, self.accumulate)
            except NotApplicable as exc:
                self.skipped[inv.id] = str(exc)
                self.live.remove(inv)
                if not self.live:
                    raise
            except BaseException:
                if self.first_failed is None:
                    self.first_failed = inv
                raise
            finally:
                self.own[inv.id] += time.perf_counter() - start

    def seconds(self, total: float) -> dict[str, float]:
        """Each member's share of a property that took ``total`` seconds: its own checks,
        and an equal part of the rest (drawing cases, Hypothesis's bookkeeping)."""
        rest = max(total - sum(self.own.values()), 0.0) / len(self.members)
        return {name: own + rest for name, own in self.own.items()}
