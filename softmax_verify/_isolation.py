"""``softmax-verify check`` with a trusted verifier and the code under test in a child.

The verifier (this process) generates the inputs, computes the reference and the
tolerances, compares, shrinks and reports: ``run_invariant`` runs here, on a
``RemoteImplementation`` whose calls go to a child process that alone imports the
user's module (``_remote``, ``_child``). So nothing the target does to its process
(numpy's error state, monkeypatched numpy functions, random seeds, signal handlers, the
working directory, a crash) reaches the verdict's arithmetic, and Hypothesis's reseeding
of ``random`` and ``np.random`` reaches only this process.

- A target that cannot be read is a usage error (``TargetError``, raised here). A target
  whose loading crashes, exits or hangs fails every pair with that error and its
  location.
- A call that crashes the child or hangs beyond interruption is an error of the pair
  being checked, with the case it was on; a new child serves the next call.
- The child dies with this process; SIGTERM and SIGINT stop it before this process
  ends. Processes the target started and left running are stopped with the child at
  the end, and the report names them (``Report.notes``).
"""

from __future__ import annotations

import dataclasses
import random
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from hypothesis import settings

from softmax_verify._dtypes import is_half
from softmax_verify._lanes import diagnose_in_lane, lane_dtypes, run_lanes
from softmax_verify._remote import LoadFailed, RemoteImplementation, crash_location
from softmax_verify._settings import DEFAULT_DTYPES
from softmax_verify._validate import resolve_dtype
from softmax_verify.conventions import Reading, ReadOptions
from softmax_verify.diagnosis import Diagnosis, diagnose
from softmax_verify.domain import Domain
from softmax_verify.implementation import Implementation
from softmax_verify.invariants import get_invariant, invariants_for
from softmax_verify.kinds import check_kind
from softmax_verify.profiles import PROFILES
from softmax_verify.report import Report, Result
from softmax_verify.runner import interpretation, run_pairs
from softmax_verify.targets import TargetSpec, load_implementation
from softmax_verify.tolerances import describe_accumulation

__all__ = ["Outcome", "Plan", "crash_location", "in_child", "verify_isolated"]

Progress = Callable[[Result], None] | None


@contextmanager
def _stopped_on_signals(impl: RemoteImplementation) -> Iterator[None]:
    """While running: SIGTERM and SIGINT first stop the child, then do what they did before
    (end the process, raise KeyboardInterrupt, or the handler the host installed).

    KeyboardInterrupt is raised by the implementation's next call (or the one in flight),
    not by the handler: raised there, it could land in a callback that swallows it."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread; PDEATHSIG remains
        return
    previous: dict[int, Any] = {}

    def handler(signum: int, frame: FrameType | None) -> None:
        impl.interrupt()
        before = previous[signum]
        if before is signal.default_int_handler:
            return  # the interrupted implementation raises KeyboardInterrupt at its next call
        if callable(before):
            before(signum, frame)
            return
        signal.signal(signum, before if before is not None else signal.SIG_DFL)
        signal.raise_signal(signum)

    for signum in (int(signal.SIGTERM), int(signal.SIGINT)):
        previous[signum] = signal.signal(signum, handler)
    try:
        yield
    finally:
        for signum, before in previous.items():
            signal.signal(signum, before if before is not None else signal.SIG_DFL)


def _load_error(pairs: Sequence[tuple[str, str]], failed: LoadFailed) -> list[Result]:
    return [
        Result(
            inv,
            dtype,
            "error",
            0,
            0.0,
            f"the target {failed.how} while being loaded, before checking {inv} at {dtype}",
            location=failed.location,
            minimal=False,
        )
        for inv, dtype in pairs
    ]


def _leftover_note(pids: Sequence[int]) -> tuple[str, ...]:
    if not pids:
        return ()
    listed = ", ".join(str(p) for p in pids)
    return (
        f"the target left {len(pids)} process{'es' if len(pids) > 1 else ''} running "
        f"(pid {listed}); stopped with its child process",
    )


@dataclass(frozen=True)
class Plan:
    """One run of the command, validated: what to check, how, and at which dtypes. A lane
    (``_lanes``) gets the same plan with its share of the dtypes."""

    spec: TargetSpec
    kind: str
    invariants: tuple[str, ...]
    dtypes: tuple[str, ...]
    profile: str
    max_examples: int | None
    seed: int | None
    domain: Domain | None
    accumulate: str

    @property
    def pairs(self) -> list[tuple[str, str]]:
        """(invariant id, dtype) in report order."""
        return [(inv, dtype) for inv in self.invariants for dtype in self.dtypes]


@dataclass
class Outcome:
    """What a run found, before it becomes a Report."""

    results: list[Result]
    diagnosis: tuple[Diagnosis, ...] = ()
    leftovers: list[int] = field(default_factory=list)
    reading: Reading | None = None


def _run_pairs(
    plan: Plan, impl: Implementation, progress: Progress, diagnose: bool
) -> tuple[list[Result], tuple[Diagnosis, ...]]:
    # Here, in the verifier: the diagnosis probes go through the same calls as the checks.
    return run_pairs(
        impl,
        plan.pairs,
        plan.dtypes,
        kind=plan.kind,
        profile=plan.profile,
        max_examples=plan.max_examples,
        seed=plan.seed,
        domain=plan.domain,
        accumulate=plan.accumulate,
        progress=progress,
        diagnose_failures=diagnose,
    )


def in_child(plan: Plan, progress: Progress, *, diagnose: bool = True) -> Outcome:
    """Every pair of ``plan`` on the target loaded in a child process."""
    remote = RemoteImplementation(plan.spec)
    with _stopped_on_signals(remote):
        try:
            start = time.perf_counter()
            try:
                remote.load()
            except LoadFailed as failed:
                loaded = _load_error(plan.pairs, failed)
                loaded[0] = dataclasses.replace(loaded[0], seconds=time.perf_counter() - start)
                for result in loaded:
                    if progress is not None:
                        progress(result)
                outcome = Outcome(loaded)
            else:
                outcome = Outcome(*_run_pairs(plan, remote, progress, diagnose))
        finally:
            remote.close()
    outcome.leftovers, outcome.reading = remote.leftovers, remote.reading
    return outcome


def diagnosis_in_child(
    plan: Plan, results: list[Result]
) -> tuple[tuple[Diagnosis, ...], list[int]]:
    """The diagnosis of ``results`` on the target loaded in a child of its own (none if it
    does not load), and the pids of processes the target left running."""
    remote = RemoteImplementation(plan.spec)
    with _stopped_on_signals(remote):
        try:
            remote.load()
            return diagnose(remote, results, plan.dtypes), remote.leftovers
        except LoadFailed:
            return (), remote.leftovers  # the results already say how loading failed
        finally:
            remote.close()


def _in_lanes(plan: Plan, lanes: list[list[str]], progress: Progress) -> Outcome:
    """Every pair of ``plan``, each lane's dtypes in a process of its own; then the
    diagnosis of any failure (it needs every dtype's results), in a lane of its own."""
    plans = [dataclasses.replace(plan, dtypes=tuple(d)) for d in lanes]
    results, reading, leftovers = run_lanes(plans, plan.pairs, progress)
    outcome = Outcome(results, leftovers=leftovers, reading=reading)
    if plan.kind == "softmax" and any(r.status in ("failed", "error") for r in results):
        outcome.diagnosis, more = diagnose_in_lane(plan, results)
        outcome.leftovers += [p for p in more if p not in outcome.leftovers]
    return outcome


def verify_isolated(
    target: str | None,
    backward: str | None = None,
    *,
    dtypes: Sequence[str] = DEFAULT_DTYPES,
    profile: str = "ci",
    max_examples: int | None = None,
    seed: int | None = None,
    timeout: float | None = 10.0,
    invariants: Iterable[str] | None = None,
    progress: Progress = None,
    isolate: bool = True,
    domain: Domain | None = None,
    accumulate: str = "float32",
    read_options: ReadOptions | None = None,
    kind: str = "softmax",
    masked: bool = False,
    autodiff: str | None = None,
    device: str = "cpu",
    jobs: int | None = None,
) -> Report:
    """``verify`` for a TARGET given as strings (see ``targets.resolve``), the target in a
    child process (``isolate=False``: in this one, as ``--no-isolate`` asks). Raises
    ``TargetError`` when the target cannot be read.

    ``jobs``: how many lanes of dtypes are checked side by side, each in a verifier
    process of its own (``_lanes``; None: one per core, up to the number of dtypes; only
    when isolated)."""
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {', '.join(PROFILES)}; got {profile!r}")
    kind = check_kind(kind)
    selected = (
        invariants_for(kind, masked=masked)
        if invariants is None
        else tuple(get_invariant(i, kind) for i in invariants)
    )
    names = tuple(resolve_dtype(d, "dtypes").name for d in dtypes)
    if seed is None and not settings.get_profile(profile).derandomize:
        seed = random.SystemRandom().randrange(2**32)
    spec = TargetSpec(
        target, backward, timeout, read_options or ReadOptions(), autodiff=autodiff, device=device
    )
    ids = tuple(inv.id for inv in selected)
    plan = Plan(spec, kind, ids, names, profile, max_examples, seed, domain, accumulate)
    lanes = lane_dtypes(names, jobs) if isolate else [list(names)]
    if len(lanes) > 1:
        outcome = _in_lanes(plan, lanes, progress)
    elif isolate:
        outcome = in_child(plan, progress)
    else:
        impl, loaded = load_implementation(spec)
        outcome = Outcome(*_run_pairs(plan, impl, progress, True), reading=loaded)
    reading = outcome.reading
    return Report(
        target=target or "reference",
        backward=backward,
        profile=profile,
        seed=seed,
        results=tuple(outcome.results),
        notes=_leftover_note(outcome.leftovers),
        diagnosis=outcome.diagnosis,
        domain=(domain or Domain()).describe(),
        accumulate=describe_accumulation(accumulate) if any(map(is_half, names)) else "",
        reading=reading,
        interpretation=interpretation(kind, None if reading is None else reading.autodiff),
    )
