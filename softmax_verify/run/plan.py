"""One run's setup, planned once from its ``Options``: which invariants at which dtypes.

``verify``, the command (through ``isolation.verifier.verify_isolated``) and ``run_pairs``
all take a ``RunPlan``. ``Options`` validated each option when it was built;
``RunPlan.build`` adds what needs the engine: the invariant ids of the kind, the
Hypothesis profile, a seed drawn for a random profile, and that the largest case the
domain allows fits in the memory available (``run.memory``). How the target is read and
called comes from the same ``Options`` (``target.load.TargetSpec``).
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from hypothesis import settings

from softmax_verify.core.domain import Domain
from softmax_verify.core.dtypes import is_half
from softmax_verify.core.kinds import Kind
from softmax_verify.core.options import Accumulation, Options
from softmax_verify.core.result import Result
from softmax_verify.core.validate import resolve_dtype
from softmax_verify.diagnosis import Diagnosis
from softmax_verify.invariants import Invariant, get_invariant, invariants_for
from softmax_verify.run.memory import check_memory
from softmax_verify.run.report import Report
from softmax_verify.run.settings import registered_profile, verdict_settings
from softmax_verify.target.conventions import Reading
from softmax_verify.tolerances import describe_accumulation

__all__ = ["RunPlan", "draw_seed", "interpretation", "run_settings", "unchecked"]


@dataclass(frozen=True)
class RunPlan:
    """Every (invariant, dtype) pair of one run, and the ``Options`` it runs under.

    ``seed`` is the one reported: the options' seed, or one drawn once (``draw_seed``)
    when the profile is random and none was given, so the report can repeat the run.
    """

    options: Options
    invariants: tuple[Invariant[Any], ...]
    dtypes: tuple[np.dtype[Any], ...]
    seed: int | None
    #: Called with each result as soon as it is known (the command's progress lines).
    progress: Callable[[Result], None] | None = field(default=None, compare=False)

    @classmethod
    def build(
        cls, options: Options | None = None, *, progress: Callable[[Result], None] | None = None
    ) -> RunPlan:
        """The plan of ``options`` (default: ``Options()``); ValueError for an invariant id
        the kind does not have, or a profile Hypothesis does not know; MemoryShortage (a
        ValueError naming ``domain``) for a domain whose largest case cannot be held."""
        options = Options() if options is None else options
        if not isinstance(options, Options):
            raise TypeError(f"options must be a softmax_verify.Options, got {options!r}")
        if options.invariants is None:
            selected = invariants_for(options.kind, masked=options.masked)
        else:
            selected = tuple(get_invariant(i, options.kind) for i in options.invariants)
        run_settings(options.profile, options.max_examples, options.seed)  # the profile exists
        dtypes = tuple(resolve_dtype(d, "dtypes") for d in options.dtypes)
        # One lane: the dtypes one after the other.
        check_memory(options.domain, [dtypes], kind=options.kind)
        return cls(
            options=options,
            invariants=selected,
            dtypes=dtypes,
            seed=draw_seed(options.profile, options.seed),
            progress=progress,
        )

    @property
    def kind(self) -> Kind:
        return self.options.kind

    @property
    def profile(self) -> str:
        return self.options.profile

    @property
    def max_examples(self) -> int | None:
        return self.options.max_examples

    @property
    def domain(self) -> Domain:
        return self.options.domain

    @property
    def accumulate(self) -> Accumulation:
        return self.options.accumulate

    def with_dtypes(self, dtypes: Sequence[np.dtype[Any]]) -> RunPlan:
        """This plan for ``dtypes`` alone (a lane's share), without progress reports."""
        names = tuple(dt.name for dt in dtypes)
        return dataclasses.replace(
            self, options=self.options.replace(dtypes=names), dtypes=tuple(dtypes), progress=None
        )

    def for_target(self, compiled_per_shape: bool) -> RunPlan:
        """This plan for a target compiled once per shape (a jax target) when
        ``compiled_per_shape``: its row lengths then recur (``Domain.recurring``)."""
        if not compiled_per_shape:
            return self
        return dataclasses.replace(
            self, options=self.options.replace(domain=self.domain.recurring())
        )

    @property
    def pairs(self) -> list[tuple[Invariant[Any], np.dtype[Any]]]:
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
