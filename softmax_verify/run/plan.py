"""One run's setup, validated once: which invariants at which dtypes, under which settings.

``verify``, the command (through ``_isolation.verify_isolated``) and ``run_pairs`` all
take a ``RunPlan``; ``RunPlan.build`` is the one place their options are checked, so
each bad option gets the same ``TypeError``/``ValueError`` naming it wherever it is
given. How the target is read and called (its convention, time limit, framework) is
not part of the plan: that is the implementation's (``Implementation``,
``targets.TargetSpec``).
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from hypothesis import settings

from softmax_verify.core.domain import Domain
from softmax_verify.core.dtypes import is_half
from softmax_verify.core.kinds import Kind, check_kind
from softmax_verify.core.result import Result
from softmax_verify.core.validate import resolve_dtype
from softmax_verify.diagnosis import Diagnosis
from softmax_verify.invariants import Invariant, get_invariant, invariants_for
from softmax_verify.run.report import Report
from softmax_verify.run.settings import DEFAULT_DTYPES, registered_profile, verdict_settings
from softmax_verify.target.conventions import Reading
from softmax_verify.tolerances import ACCUMULATIONS, describe_accumulation

__all__ = ["RunPlan", "draw_seed", "interpretation", "run_settings", "unchecked"]


@dataclass(frozen=True)
class RunPlan:
    """Every (invariant, dtype) pair of one run and what they run under.

    ``seed`` is the one reported: drawn once (``draw_seed``) when the profile is random
    and none was given, so the report can repeat the run.
    """

    invariants: tuple[Invariant, ...]
    dtypes: tuple[np.dtype[Any], ...]
    kind: Kind
    profile: str
    max_examples: int | None
    seed: int | None
    domain: Domain
    accumulate: str
    #: Called with each result as soon as it is known (the command's progress lines).
    progress: Callable[[Result], None] | None = field(default=None, compare=False)

    @classmethod
    def build(
        cls,
        *,
        dtypes: Sequence[Any] = DEFAULT_DTYPES,
        profile: str = "ci",
        max_examples: int | None = None,
        seed: int | None = None,
        invariants: Iterable[str] | None = None,
        domain: Domain | None = None,
        accumulate: str = "float32",
        kind: str = "softmax",
        masked: bool = False,
        progress: Callable[[Result], None] | None = None,
    ) -> RunPlan:
        """The plan for these options (``verify``'s, which documents them), each validated."""
        resolved = _check_dtypes(dtypes)
        _check_count(max_examples, "max_examples", "a positive int", minimum=1)
        _check_count(seed, "seed", "a non-negative int", minimum=0)
        checked_kind = check_kind(kind)
        if not isinstance(masked, bool):
            raise TypeError(f"masked must be a bool, got {masked!r}")
        if invariants is None:
            selected = invariants_for(checked_kind, masked=masked)
        else:  # an id named twice is checked once: a second run would only repeat the first
            named = (get_invariant(i, checked_kind) for i in invariants)
            selected = tuple({inv.id: inv for inv in named}.values())
        run_settings(profile, max_examples, seed)  # validates the profile
        return cls(
            invariants=selected,
            dtypes=resolved,
            kind=checked_kind,
            profile=profile,
            max_examples=max_examples,
            seed=draw_seed(profile, seed),
            domain=_check_options(domain, accumulate),
            accumulate=accumulate,
            progress=progress,
        )

    def for_target(self, compiled_per_shape: bool) -> RunPlan:
        """This plan for a target compiled once per shape (a jax target) when
        ``compiled_per_shape``: its row lengths then recur (``Domain.recurring``)."""
        if not compiled_per_shape:
            return self
        return dataclasses.replace(self, domain=self.domain.recurring())

    @property
    def pairs(self) -> list[tuple[Invariant, np.dtype[Any]]]:
        """Each invariant at each dtype, in report order."""
        return [(inv, dt) for inv in self.invariants for dt in self.dtypes]

    @property
    def accumulation_note(self) -> str:
        """The report's accumulation model: stated only when a half dtype is checked."""
        return describe_accumulation(self.accumulate) if any(map(is_half, self.dtypes)) else ""

    def report(
        self,
        target: str,
        backward: str | None,
        results: Sequence[Result],
        diagnosis: Sequence[Diagnosis],
        *,
        reading: Reading | None,
        notes: tuple[str, ...] = (),
    ) -> Report:
        """The Report of this plan's run: its results, with what it ran under."""
        return Report(
            target=target,
            backward=backward,
            profile=self.profile,
            seed=self.seed,
            results=tuple(results),
            notes=notes,
            diagnosis=tuple(diagnosis),
            domain=self.domain.describe(),
            accumulate=self.accumulation_note,
            reading=reading,
            interpretation=interpretation(self.kind, None if reading is None else reading.autodiff),
        )


def interpretation(kind: str, how: object) -> str:
    """The report's interpretation line: the kind when not softmax, and how it was read."""
    parts = [] if kind == "softmax" else [kind]
    if isinstance(how, str) and how:
        parts.append(how)
    return "; ".join(parts)


def _check_dtypes(dtypes: object) -> tuple[np.dtype[Any], ...]:
    if isinstance(dtypes, str):
        raise TypeError(f"dtypes must be a sequence of dtype names, got the string {dtypes!r}")
    if not isinstance(dtypes, Iterable):
        raise TypeError(f"dtypes must be a sequence of dtype names, got {dtypes!r}")
    resolved = tuple(resolve_dtype(d, "dtypes") for d in dtypes)
    if not resolved:
        raise ValueError("dtypes must name at least one dtype, got an empty sequence")
    return resolved


def _check_count(value: object, name: str, expected: str, *, minimum: int) -> None:
    """None, or an int (not a bool) of at least ``minimum``."""
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, int) or value < minimum
    ):
        raise ValueError(f"{name} must be {expected} or None, got {value!r}")


def run_settings(profile: str, max_examples: int | None, seed: int | None) -> settings:
    """The settings of a run under the registered ``profile``: its example count unless
    ``max_examples`` is given, derandomized only when the profile is and no seed is."""
    base = registered_profile(profile)
    return settings(
        verdict_settings(base),
        max_examples=max_examples if max_examples is not None else base.max_examples,
        derandomize=base.derandomize and seed is None,
        database=None,  # a verifier run must not write an example database into the user's folder
    )


def draw_seed(profile: str, seed: int | None) -> int | None:
    """``seed``, or one drawn for a random profile so that its report can repeat the run."""
    if seed is None and not registered_profile(profile).derandomize:
        return random.SystemRandom().randrange(2**32)
    return seed


def _check_options(domain: object, accumulate: object) -> Domain:
    """``domain`` (None: every shape) and ``accumulate`` validated; the domain to use."""
    if accumulate not in ACCUMULATIONS:
        raise ValueError(
            f"accumulate must be one of {', '.join(ACCUMULATIONS)}; got {accumulate!r}"
        )
    if domain is None:
        return Domain()
    if not isinstance(domain, Domain):
        raise TypeError(f"domain must be a softmax_verify.Domain or None, got {domain!r}")
    return domain


def unchecked(
    pairs: Sequence[tuple[str, str]], why: str, location: str | None = None
) -> list[Result]:
    """An error for each (invariant id, dtype name) pair that could not be checked: ``why``
    (what stopped it), then "before checking ID at DTYPE"."""
    return [
        Result(
            inv,
            dtype,
            "error",
            0,
            0.0,
            f"{why} before checking {inv} at {dtype}",
            location=location,
            minimal=False,
        )
        for inv, dtype in pairs
    ]
