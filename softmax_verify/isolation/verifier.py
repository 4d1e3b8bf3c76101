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
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

import numpy as np

from softmax_verify.core.result import Result
from softmax_verify.diagnosis import Diagnosis, diagnose
from softmax_verify.isolation.channel import ChildTarget
from softmax_verify.isolation.lanes import diagnose_in_lane, lane_dtypes, run_lanes
from softmax_verify.isolation.remote import LoadFailed, RemoteImplementation, crash_location
from softmax_verify.isolation.remote_loss import RemoteLossImplementation
from softmax_verify.run.plan import RunPlan, unchecked
from softmax_verify.run.report import Report
from softmax_verify.run.runner import run_pairs
from softmax_verify.target.conventions import Reading
from softmax_verify.target.load import TargetSpec, load_target, with_outputs_read

__all__ = [
    "Outcome",
    "crash_location",
    "diagnosis_in_child",
    "in_child",
    "remote_target",
    "verify_isolated",
]


@contextmanager
def _stopped_on_signals(impl: ChildTarget) -> Iterator[None]:
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
    return unchecked(pairs, f"the target {failed.how} while being loaded,", failed.location)


def _leftover_note(pids: Sequence[int]) -> tuple[str, ...]:
    if not pids:
        return ()
    listed = ", ".join(str(p) for p in pids)
    return (
        f"the target left {len(pids)} process{'es' if len(pids) > 1 else ''} running "
        f"(pid {listed}); stopped with its child process",
    )


@dataclass
class Outcome:
    """What a run found, before it becomes a Report."""

    results: list[Result]
    diagnosis: tuple[Diagnosis, ...] = ()
    leftovers: list[int] = field(default_factory=list)
    reading: Reading | None = None


def verify_isolated(
    target: str | None,
    backward: str | None,
    plan: RunPlan,
    *,
    isolate: bool = True,
    jobs: int | None = None,
) -> Report:
    """``verify`` for a TARGET given as strings (see ``target.load.resolve``), the target in
    a child process (``isolate=False``: in this one, as ``--no-isolate`` asks), run as
    ``plan`` says and read as its options say. Raises ``TargetError`` when the target
    cannot be read.

    ``jobs``: how many lanes of dtypes are checked side by side, each in a verifier
    process of its own (``lanes``; None: one per core, up to the number of dtypes; only
    when isolated)."""
    spec = TargetSpec(target, backward, plan.options)
    name = target or "reference"
    plan = plan.for_target(spec.compiled_per_shape)
    spec = TargetSpec(target, backward, plan.options)
    if not isolate:
        impl, reading = load_target(spec)
        results, found = run_pairs(impl, plan)
        reading = with_outputs_read(reading, impl)
        return plan.report(name, backward, results, found, reading=reading)
    lanes = lane_dtypes(plan.dtypes, jobs)
    outcome = _in_lanes(spec, plan, lanes) if len(lanes) > 1 else in_child(spec, plan)
    return plan.report(
        name,
        backward,
        outcome.results,
        outcome.diagnosis,
        reading=outcome.reading,
        notes=_leftover_note(outcome.leftovers),
    )


def remote_target(spec: TargetSpec) -> RemoteImplementation | RemoteLossImplementation:
    """The proxy of the target ``spec`` names, in a child process not yet started: a
    cross-entropy loss's or a softmax's."""
    if spec.options.kind == "cross_entropy":
        return RemoteLossImplementation(spec)
    return RemoteImplementation(spec)


def in_child(spec: TargetSpec, plan: RunPlan, *, diagnose: bool = True) -> Outcome:
    """Every pair of ``plan`` on the target loaded in a child process (``diagnose=False``:
    failures left undiagnosed, for a lane's share of the dtypes)."""
    remote = remote_target(spec)
    with _stopped_on_signals(remote):
        try:
            outcome = Outcome(*_run_remote(remote, plan, diagnose))
            remote.read_again()  # what its calls taught: the libraries' arrays it returned
        finally:
            remote.close()
    outcome.leftovers, outcome.reading = remote.leftovers, remote.reading
    return outcome


def _run_remote(
    remote: RemoteImplementation | RemoteLossImplementation, plan: RunPlan, diagnose: bool
) -> tuple[list[Result], tuple[Diagnosis, ...]]:
    """``plan`` on the child's implementation; every pair an error if the target fails to load.

    Here, in the verifier: the diagnosis probes go through the same calls as the checks."""
    start = time.perf_counter()
    try:
        remote.load()
    except LoadFailed as failed:
        loaded = _load_error([(inv.id, dt.name) for inv, dt in plan.pairs], failed)
        loaded[0] = dataclasses.replace(loaded[0], seconds=time.perf_counter() - start)
        for result in loaded:
            if plan.progress is not None:
                plan.progress(result)
        return loaded, ()
    return run_pairs(remote, plan, diagnose_failures=diagnose)


def diagnosis_in_child(
    spec: TargetSpec, plan: RunPlan, results: list[Result]
) -> tuple[tuple[Diagnosis, ...], list[int]]:
    """The diagnosis of ``results`` on the target loaded in a child of its own (none if it
    does not load), and the pids of processes the target left running."""
    remote = remote_target(spec)
    with _stopped_on_signals(remote):
        try:
            remote.load()
            found = diagnose(
                remote, results, plan.dtypes, accumulate=plan.accumulate, kind=plan.kind
            )
            return found, remote.leftovers
        except LoadFailed:
            return (), remote.leftovers  # the results already say how loading failed
        finally:
            remote.close()


def _in_lanes(spec: TargetSpec, plan: RunPlan, lanes: list[list[np.dtype[Any]]]) -> Outcome:
    """Every pair of ``plan``, each lane's dtypes in a process of its own; then the
    diagnosis of any failure (it needs every dtype's results), in a lane of its own."""
    shares = [plan.with_dtypes(dtypes) for dtypes in lanes]
    pairs = [(inv.id, dtype.name) for inv, dtype in plan.pairs]
    results, reading, leftovers = run_lanes(spec, shares, pairs, plan.progress)
    outcome = Outcome(results, leftovers=leftovers, reading=reading)
    if any(r.status in ("failed", "error") for r in results):
        outcome.diagnosis, more = diagnose_in_lane(
            spec, dataclasses.replace(plan, progress=None), results
        )
        outcome.leftovers += [p for p in more if p not in outcome.leftovers]
    return outcome
