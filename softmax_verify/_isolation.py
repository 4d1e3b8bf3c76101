"""Crash isolation for ``softmax-verify check``: the checks run in a child process.

The sandbox turns anything the code under test does in Python (raise, hang, exit)
into an "error" result, but a crash of the process (a segfault in a C extension,
``os.abort()``, a fatal XLA error, ``os._exit``) would end the verifier itself.
So the command line runs the (invariant, dtype) pairs in a child process:

- The child is started with the "spawn" method and resolves the target itself
  from the same strings the command line got (callables are not pickled). It pays
  the start-up cost (numpy, Hypothesis, the target) once and then runs
  ``run_invariant`` for each pair in turn, announcing ``("start", i)`` before
  pair ``i`` and sending ``("result", i, data)`` as soon as it is done, over a
  dedicated pipe (never its stdout, which the code under test may print to).
  Results travel as plain data (arrays as dtype, shape and bytes), so they
  round-trip bit for bit.
- When the child dies during pair ``i``, that pair becomes an "error" naming the
  signal or exit status, with the innermost frame of the user's code taken from
  the ``faulthandler`` dump the child writes to a temporary file; a new child
  then runs the pairs after ``i``. The error carries the case the child was checking
  (``_case_log``: written to a file before each case) as its counterexample, not
  shrunk. Results already received are kept. A child that dies before it announces
  its first pair (while loading the target) fails every remaining pair, so the loop
  always ends.
- Every child gets the same seed, drawn once by the parent as ``verify`` does,
  so the report's seed and its "reproduce" command stay valid.
- The per-call time limit (``SIGALRM``) works in the child as in process. The
  parent adds a watchdog for code stuck where that signal cannot interrupt it (C
  code holding the GIL, or blocking the signal): it stops the child when no call
  of the implementation has returned and no message has arrived for
  ``WATCHDOG_FACTOR * timeout + WATCHDOG_MARGIN`` seconds (90 s for the default
  10 s limit; ``STARTUP_SECONDS`` more until the child's first message).
  Progress is a call counter in shared memory, checked lazily when the allowance
  runs out, so a kill comes between one and two allowances after the last
  progress. The child is stopped with ``SIGABRT`` first, so ``faulthandler``
  records where it was stuck, then ``SIGKILL``.
"""

from __future__ import annotations

import ctypes
import dataclasses
import faulthandler
import functools
import multiprocessing
import os
import random
import re
import signal
import sys
import sysconfig
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from multiprocessing.connection import Connection, wait
from typing import Any

import numpy as np
from hypothesis import settings

from softmax_verify._case_log import CaseLog, read_case
from softmax_verify._compare import Mismatch
from softmax_verify._sandbox import user_location
from softmax_verify._validate import resolve_dtype
from softmax_verify.implementation import Implementation
from softmax_verify.invariants import get_invariant, invariants_for
from softmax_verify.profiles import PROFILES
from softmax_verify.report import Report, Result
from softmax_verify.runner import run_invariant
from softmax_verify.targets import resolve, resolve_callable

__all__ = [
    "STARTUP_SECONDS",
    "WATCHDOG_FACTOR",
    "WATCHDOG_MARGIN",
    "crash_location",
    "decode_result",
    "encode_result",
    "verify_isolated",
]

#: A call may legitimately run up to its time limit, and the checks do some work of their
#: own between calls; the watchdog only has to catch a child that will never come back.
WATCHDOG_FACTOR = 3.0
WATCHDOG_MARGIN = 60.0
#: Added to the allowance until the child's first message: importing a framework is slow.
STARTUP_SECONDS = 60.0
#: How long a child that was told to stop (or has sent everything) gets to exit.
_EXIT_GRACE = 5.0

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
_THIS_FILE = os.path.abspath(__file__)
_STDLIB_DIRS = tuple(
    {os.path.abspath(sysconfig.get_paths()[key]) + os.sep for key in ("stdlib", "platstdlib")}
)
_FRAME = re.compile(r'^\s+File "(?P<path>.*)", line (?P<line>\d+|\?\?\?) in (?P<name>.*)$')
_Pair = tuple[str, str]


# --- results as plain data -----------------------------------------------------------------


def encode_result(result: Result) -> dict[str, Any]:
    """``result`` as builtins only: arrays become (dtype, shape, bytes), the mismatch a dict."""
    data = {f.name: getattr(result, f.name) for f in dataclasses.fields(result)}
    if result.counterexample is not None:
        data["counterexample"] = {
            name: (value.dtype.str, value.shape, np.ascontiguousarray(value).tobytes())
            for name, value in ((k, np.asarray(v)) for k, v in result.counterexample.items())
        }
    if result.mismatch is not None:
        data["mismatch"] = dataclasses.asdict(result.mismatch)
    return data


def decode_result(data: dict[str, Any]) -> Result:
    """The Result ``encode_result`` encoded, bit for bit."""
    fields = dict(data)
    if fields.get("counterexample") is not None:
        fields["counterexample"] = {
            name: np.frombuffer(raw, dtype=np.dtype(dtype)).reshape(shape).copy()
            for name, (dtype, shape, raw) in fields["counterexample"].items()
        }
    if fields.get("mismatch") is not None:
        fields["mismatch"] = Mismatch(**fields["mismatch"])
    return Result(**fields)


# --- where a dead child was ----------------------------------------------------------------


def _is_users(path: str) -> bool:
    """False for frames of this package, numpy, Hypothesis and the standard library."""
    if path.startswith("<"):  # <frozen importlib._bootstrap> and the like
        return False
    path = os.path.abspath(path)
    parts = path.split(os.sep)
    if path.startswith(_PACKAGE_DIR + os.sep) or "numpy" in parts or "hypothesis" in parts:
        return False
    in_stdlib = path.startswith(_STDLIB_DIRS)
    return not in_stdlib or "site-packages" in parts or "dist-packages" in parts


def crash_location(dump: str) -> str | None:
    """``file:line in function`` of the innermost user frame in a ``faulthandler`` dump.

    The thread running the checks (the one with this module's loop on its stack) is
    searched first, then the thread that crashed, then the others.
    """
    blocks: list[tuple[str, list[tuple[str, str, str]]]] = []
    for line in dump.splitlines():
        if line.startswith(("Current thread", "Thread ", "Stack")):
            blocks.append((line, []))
        elif blocks and (match := _FRAME.match(line)):
            blocks[-1][1].append((match["path"], match["line"], match["name"]))

    def rank(block: tuple[str, list[tuple[str, str, str]]]) -> int:
        header, frames = block
        if any(os.path.abspath(path) == _THIS_FILE for path, _, _ in frames):
            return 0
        return 1 if header.startswith(("Current thread", "Stack")) else 2

    for _, frames in sorted(blocks, key=rank):
        for path, line, name in frames:  # innermost first
            if _is_users(path):
                return f"{path}:{line} in {name}"
    return None


# --- the child -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Job:
    """What a child needs (picklable): the target as strings and the pairs to check."""

    target: str | None
    backward: str | None
    pairs: tuple[_Pair, ...]
    profile: str
    max_examples: int | None
    seed: int | None
    timeout: float | None
    fault_path: str = ""
    case_path: str = ""
    kind: str = "softmax"
    autodiff: str | None = None
    device: str = "cpu"


def _counted(func: Callable[..., Any], calls: ctypes.c_uint64) -> Callable[..., Any]:
    """``func`` counting its returns (and raises) in shared memory: the watchdog's progress."""

    @functools.wraps(func)  # keeps __wrapped__: the stage source lookup unwraps to the user's
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        finally:
            calls.value += 1

    return call


def _child_main(conn: Connection, job: _Job, calls: ctypes.c_uint64) -> None:
    """Run ``job.pairs`` in order, reporting each over ``conn``; ends with ``os._exit(0)``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's; it stops this child
    # A descriptor, left open until the process ends: faulthandler writes to it on a crash.
    faulthandler.enable(file=os.open(job.fault_path, os.O_WRONLY | os.O_TRUNC), all_threads=True)
    # The parent's stdout carries the report (JSON with --format json): what the code under
    # test prints, from Python or C, goes to stderr instead.
    sys.stdout.flush()
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    index: int | None = None
    try:
        forward, backward = resolve(job.target, autodiff=job.autodiff, device=job.device)
        if job.backward:
            backward = resolve_callable(job.backward)
        impl = Implementation(
            _counted(forward, calls),
            None if backward is None else _counted(backward, calls),
            timeout=job.timeout,
            name=job.target or "reference",
        )
        log = CaseLog(job.case_path)
        for index, (inv, dtype) in enumerate(job.pairs):
            log.clear()
            conn.send(("start", index))
            result = run_invariant(
                inv,
                impl,
                dtype,
                profile=job.profile,
                max_examples=job.max_examples,
                seed=job.seed,
                on_case=log.write,
                kind=job.kind,
            )
            conn.send(("result", index, encode_result(result)))
    except BaseException as exc:  # what the sandbox lets through: KeyboardInterrupt and the like
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        described = type(exc).__name__ + (f": {text}" if text else "")
        conn.send(("raised", index, described, user_location(exc.__traceback__)))
        raise  # multiprocessing prints the traceback and exits with status 1
    conn.close()
    # Skip interpreter shutdown: a thread or atexit hook the code under test left behind
    # must not keep this process alive, or crash it, after its results are in.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


# --- the parent ----------------------------------------------------------------------------


def _watchdog(timeout: float | None) -> float | None:
    if timeout is None:
        return None
    seconds = WATCHDOG_FACTOR * timeout + WATCHDOG_MARGIN
    return None if seconds >= threading.TIMEOUT_MAX else seconds


def _death(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = "unknown signal"
        return f"crashed the process ({name}, signal {-exitcode})"
    return f"ended the process (exit status {exitcode})"


@dataclasses.dataclass
class _Worker:
    """The parent's view of one child: what it announced, sent, and how it ended."""

    job: _Job
    on_result: Callable[[Result], None]
    results: list[Result] = dataclasses.field(default_factory=list)
    current: int | None = None
    started: float = 0.0
    raised: tuple[str, str | None] | None = None
    heard: bool = False

    @property
    def done(self) -> bool:
        return len(self.results) == len(self.job.pairs)

    def handle(self, message: tuple[Any, ...]) -> None:
        self.heard = True
        if message[0] == "start":
            self.current, self.started = message[1], time.perf_counter()
        elif message[0] == "result":
            result = decode_result(message[2])
            self.results.append(result)
            self.current = None
            self.on_result(result)
        elif message[0] == "raised":
            self.raised = (message[2], message[3])

    def ended(self, how: str, location: str | None, case: dict[str, Any] | None) -> None:
        """Record the early end of the child (``how``: "crashed the process (...)" etc.), with
        the case it was checking, if it got to one."""
        if self.raised is not None:
            how, location = f"stopped on {self.raised[0]}", self.raised[1] or location
        if self.current is not None:
            inv, dtype = self.job.pairs[self.current]
            self._error(f"the implementation {how} while checking {inv} at {dtype}", location, case)
        elif not self.results:  # died loading the target: no pair would ever get further
            for inv, dtype in self.job.pairs:
                self.started = time.perf_counter()
                self._error(
                    f"the implementation {how} while being loaded, before checking {inv} "
                    f"at {dtype}",
                    location,
                )

    def _error(
        self, message: str, location: str | None, case: dict[str, Any] | None = None
    ) -> None:
        inv, dtype = self.job.pairs[len(self.results)]
        seconds = time.perf_counter() - self.started
        result = Result(
            inv,
            dtype,
            "error",
            0,
            seconds,
            message,
            counterexample=case,
            location=location,
            minimal=False,  # the crash ended the search: the case it was on, not shrunk
        )
        self.results.append(result)
        self.on_result(result)


def _receive(conn: Connection) -> tuple[Any, ...] | None:
    try:
        message = conn.recv()
    except Exception:  # EOF, or bytes that are not our message: either way the stream ended
        return None
    return message if isinstance(message, tuple) and message else None


def _supervise(
    proc: multiprocessing.process.BaseProcess,
    conn: Connection,
    calls: ctypes.c_uint64,
    worker: _Worker,
) -> bool:
    """Follow the child until it exits or has sent everything; True when it had to be stopped."""
    watchdog = _watchdog(worker.job.timeout)
    seen, last = calls.value, time.monotonic()
    while not worker.done:
        wait_for = None
        if watchdog is not None:
            allowance = watchdog + (0.0 if worker.heard else STARTUP_SECONDS)
            wait_for = max(0.0, last + allowance - time.monotonic())
        ready = wait([conn, proc.sentinel], wait_for)
        if conn in ready:
            message = _receive(conn)
            if message is None:
                return False
            worker.handle(message)
            last = time.monotonic()
        elif ready:  # only the sentinel: the child exited; read what it sent before it died
            while not worker.done and conn.poll(0) and (message := _receive(conn)) is not None:
                worker.handle(message)
            return False
        elif calls.value != seen:
            seen, last = calls.value, time.monotonic()
        else:
            _stop(proc)
            return True
    return False


def _stop(proc: multiprocessing.process.BaseProcess) -> None:
    """SIGABRT, so faulthandler records where the child is stuck; SIGKILL if it survives."""
    if proc.pid is not None:
        try:
            os.kill(proc.pid, signal.SIGABRT)
        except ProcessLookupError:
            return
    proc.join(_EXIT_GRACE)
    if proc.is_alive():
        proc.kill()


def _run_child(job: _Job, on_result: Callable[[Result], None]) -> list[Result]:
    """Run a child on ``job.pairs``: the results of a prefix of them (at least one)."""
    ctx = multiprocessing.get_context("spawn")
    handle, fault_path = tempfile.mkstemp(prefix="softmax-verify-", suffix=".faults")
    os.close(handle)
    handle, case_path = tempfile.mkstemp(prefix="softmax-verify-", suffix=".case")
    os.close(handle)
    job = dataclasses.replace(job, fault_path=fault_path, case_path=case_path)
    receiver, sender = ctx.Pipe(duplex=False)
    calls = ctx.RawValue(ctypes.c_uint64, 0)
    proc = ctx.Process(
        target=_child_main, args=(sender, job, calls), name="softmax-verify-check", daemon=True
    )
    worker = _Worker(job, on_result)
    started = False
    try:
        proc.start()
        started = True
        sender.close()  # so the child's death is an end of file here
        stuck = _supervise(proc, receiver, calls, worker)
        proc.join(_EXIT_GRACE)
        if proc.is_alive():  # has sent everything (or garbage) but does not exit
            proc.kill()
            proc.join()
        if not worker.done:
            with open(fault_path, errors="replace") as fault:
                location = crash_location(fault.read())
            if stuck:
                limit = worker.job.timeout
                how = (
                    f"did not return within the {limit:g} s time limit and could not be "
                    f"interrupted (stuck outside Python, e.g. in C code); the process was "
                    f"stopped after {_watchdog(limit):g} s without progress"
                )
            else:
                how = _death(proc.exitcode)
            worker.ended(how, location, read_case(case_path))
    finally:
        if started:
            if proc.is_alive():
                proc.kill()
            proc.join()
            proc.close()
        receiver.close()
        sender.close()
        os.unlink(fault_path)
        os.unlink(case_path)
    return worker.results


def verify_isolated(
    target: str | None,
    backward: str | None = None,
    *,
    dtypes: Sequence[str] = ("float64",),
    profile: str = "ci",
    max_examples: int | None = None,
    seed: int | None = None,
    timeout: float | None = 10.0,
    invariants: Iterable[str] | None = None,
    progress: Callable[[Result], None] | None = None,
    kind: str = "softmax",
    masked: bool = False,
    autodiff: str | None = None,
    device: str = "cpu",
    interpretation: str | None = None,
) -> Report:
    """``verify`` for a TARGET given as strings (see ``targets.resolve``), crash-isolated.

    The same results as ``verify(*resolve(target), ...)`` in process, except that a
    crash of the process or a call stuck beyond interruption is reported as an error
    of the pair it happened in, and the other pairs still run. ``interpretation``: how
    the parent read the target (softmax_verify.autodiff), for the report.
    """
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {', '.join(PROFILES)}; got {profile!r}")
    selected = (
        invariants_for(kind, masked=masked)
        if invariants is None
        else tuple(get_invariant(i, kind) for i in invariants)
    )
    names = [resolve_dtype(d, "dtypes").name for d in dtypes]
    if seed is None and not settings.get_profile(profile).derandomize:
        # As verify does, but here: every child must run with the same seed.
        seed = random.SystemRandom().randrange(2**32)
    pairs = tuple((inv.id, name) for inv in selected for name in names)
    results: list[Result] = []
    while len(results) < len(pairs):
        job = _Job(
            target,
            backward,
            pairs[len(results) :],
            profile,
            max_examples,
            seed,
            timeout,
            kind=kind,
            autodiff=autodiff,
            device=device,
        )
        results += _run_child(job, progress or (lambda _result: None))
    return Report(
        target=target or "reference",
        backward=backward,
        profile=profile,
        seed=seed,
        results=tuple(results),
        interpretation="; ".join(
            p for p in (kind if kind != "softmax" else "", interpretation) if p
        ),
    )
