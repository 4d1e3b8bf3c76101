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
from types import FrameType
from typing import Any

from hypothesis import settings

from softmax_verify._dtypes import is_half
from softmax_verify._remote import LoadFailed, RemoteImplementation, crash_location
from softmax_verify._settings import DEFAULT_DTYPES
from softmax_verify._validate import resolve_dtype
from softmax_verify.conventions import Reading, ReadOptions
from softmax_verify.diagnosis import Diagnosis
from softmax_verify.domain import Domain
from softmax_verify.implementation import Implementation
from softmax_verify.invariants import get_invariant, invariants_for
from softmax_verify.kinds import check_kind
from softmax_verify.profiles import PROFILES
from softmax_verify.report import Report, Result
from softmax_verify.runner import interpretation, run_pairs
from softmax_verify.targets import TargetSpec, load_implementation
from softmax_verify.tolerances import describe_accumulation

__all__ = ["crash_location", "verify_isolated"]


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
    progress: Callable[[Result], None] | None = None,
    isolate: bool = True,
    domain: Domain | None = None,
    accumulate: str = "float32",
    read_options: ReadOptions | None = None,
    kind: str = "softmax",
    masked: bool = False,
    autodiff: str | None = None,
    device: str = "cpu",
) -> Report:
    """``verify`` for a TARGET given as strings (see ``targets.resolve``), the target in a
    child process (``isolate=False``: in this one, as ``--no-isolate`` asks). Raises
    ``TargetError`` when the target cannot be read."""
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {', '.join(PROFILES)}; got {profile!r}")
    kind = check_kind(kind)
    selected = (
        invariants_for(kind, masked=masked)
        if invariants is None
        else tuple(get_invariant(i, kind) for i in invariants)
    )
    names = [resolve_dtype(d, "dtypes").name for d in dtypes]
    if seed is None and not settings.get_profile(profile).derandomize:
        seed = random.SystemRandom().randrange(2**32)
    pairs = [(inv.id, name) for inv in selected for name in names]
    spec = TargetSpec(
        target, backward, timeout, read_options or ReadOptions(), autodiff=autodiff, device=device
    )

    def run(impl: Implementation) -> list[Result]:
        # Here, in the verifier: the diagnosis probes go through the same calls as the checks.
        results, diagnosed = run_pairs(
            impl,
            pairs,
            names,
            kind=kind,
            profile=profile,
            max_examples=max_examples,
            seed=seed,
            domain=domain,
            accumulate=accumulate,
            progress=progress,
        )
        found.extend(diagnosed)
        return results

    def failed_to_load(loaded: list[Result]) -> list[Result]:
        for result in loaded:
            if progress is not None:
                progress(result)
        return loaded

    notes: tuple[str, ...] = ()
    found: list[Diagnosis] = []
    reading: Reading | None = None
    if not isolate:
        impl, reading = load_implementation(spec)
        results = run(impl)
    else:
        remote = RemoteImplementation(spec)
        with _stopped_on_signals(remote):
            try:
                start = time.perf_counter()
                try:
                    remote.load()
                except LoadFailed as failed:
                    loaded = _load_error(pairs, failed)
                    seconds = time.perf_counter() - start
                    loaded[0] = dataclasses.replace(loaded[0], seconds=seconds)
                    results = failed_to_load(loaded)
                else:
                    results = run(remote)
            finally:
                remote.close()
        notes = _leftover_note(remote.leftovers)
        reading = remote.reading
    return Report(
        target=target or "reference",
        backward=backward,
        profile=profile,
        seed=seed,
        results=tuple(results),
        notes=notes,
        diagnosis=tuple(found),
        domain=(domain or Domain()).describe(),
        accumulate=describe_accumulation(accumulate) if any(map(is_half, names)) else "",
        reading=reading,
        interpretation=interpretation(kind, None if reading is None else reading.autodiff),
    )
