"""Dtypes checked side by side: one verifier process per lane, where cores are to spare.

The verifier's own work (drawing inputs, comparing, shrinking) is Python, so threads
would share one core. With two dtypes or more and two cores or more, ``softmax-verify
check`` gives each lane (a share of the dtypes) a process of its own, which runs
``verify_isolated`` for those dtypes with a child of its own for the target. A lane is
the verifier's code alone (it never imports the target), so what it sends back is
trusted, and pickled.

- Results reach ``progress`` in the order a one-lane run gives them.
- A lane gets SIGTERM when this process dies, however it dies (``PR_SET_PDEATHSIG``), so
  it stops its own child, and what that child started, first; this process stops every
  lane when it is done or interrupted.
- While lanes run, this process is a child subreaper (``reaper.custody``): if a lane
  dies before stopping its child (killed, by the target say), the child dies with it
  and whatever the target started is reparented here, and stopped and named when the
  lanes are stopped.
- A lane that dies before it is done (killed, out of memory, or by a target that kills
  its parent) turns its unchecked pairs into errors that say so.
- The diagnosis of failures needs every dtype's results: it runs after the others, in a
  lane of its own. So in a run in lanes this process never starts the target's child.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import socket
import subprocess
import sys
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection, wait
from typing import TYPE_CHECKING, TypeVar

from softmax_verify.core.result import Result
from softmax_verify.isolation.process import death, python_entry, stderr_fd
from softmax_verify.isolation.reaper import SweepTimeout, Tree, custody
from softmax_verify.run.plan import unchecked
from softmax_verify.target.conventions import Reading
from softmax_verify.target.load import TargetError

if TYPE_CHECKING:
    from softmax_verify.diagnosis import Diagnosis
    from softmax_verify.run.plan import RunPlan
    from softmax_verify.target.load import TargetSpec

__all__ = ["STOP_SECONDS", "diagnose_in_lane", "lane_dtypes", "run_lanes"]

T = TypeVar("T")

#: How long a lane told to stop (SIGTERM) gets to stop its child before it is killed.
STOP_SECONDS = 2.0
_ENTRY = python_entry("softmax_verify.isolation.lane", "lane_main")


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def lane_dtypes(dtypes: Sequence[T], jobs: int | None) -> list[list[T]]:
    """The dtypes of each lane, dealt in turn: ``jobs`` lanes (None: one per core the
    process may use), never more lanes than dtypes, at least one."""
    count = max(1, min(len(dtypes), _cores() if jobs is None else jobs))
    return [list(dtypes[i::count]) for i in range(count)]


class _Lane:
    """One lane's process, told what to do as soon as it starts: check the pairs of
    ``plan`` on the target of ``spec``, or (given ``results``) diagnose their failures."""

    def __init__(self, spec: TargetSpec, plan: RunPlan, results: list[Result] | None) -> None:
        ours, theirs = socket.socketpair()
        custody.take()
        try:
            self.tree = Tree()
            self.popen = subprocess.Popen(
                [sys.executable, "-c", _ENTRY, str(theirs.fileno()), str(os.getpid())],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=stderr_fd(),
                start_new_session=True,  # Ctrl-C is this process's to handle
            )
        except BaseException:
            custody.give_back()
            ours.close()
            raise
        finally:
            theirs.close()
        self.tree.attach(self.popen.pid)
        self.in_custody = True
        self.conn = Connection(ours.detach())
        self.dtypes = [dtype.name for dtype in plan.dtypes]
        self.finished = False
        self.reading: Reading | None = None
        self.leftovers: list[int] = []
        self.diagnosis: tuple[Diagnosis, ...] = ()
        request = (tuple(sys.path), spec, plan, results)
        self.conn.send_bytes(pickle.dumps(request, protocol=5))

    def stop(self) -> None:
        """SIGTERM (the lane stops its child), then SIGKILL if it lingers."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.popen.terminate()
            try:
                self.popen.wait(STOP_SECONDS)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self.conn.close()

    def sweep(self, lanes: Sequence[_Lane]) -> None:
        """After the lane has stopped: what its child's processes left, if the lane could
        not stop them itself (it was killed), stopped and named; then the custody ends."""
        try:
            found = self.tree.sweep(own={lane.popen.pid for lane in lanes})
        except SweepTimeout as stuck:
            found = stuck.pids
        self.leftovers += [pid for pid in found if pid not in self.leftovers]
        if self.in_custody:
            self.in_custody = False
            custody.give_back()


class _InOrder:
    """Hands results to ``progress`` in the order of ``pairs``, each once all before it are."""

    def __init__(self, pairs: Sequence[tuple[str, str]], progress: Callable[[Result], None] | None):
        self.index = {pair: i for i, pair in enumerate(pairs)}
        self.slots: list[Result | None] = [None] * len(pairs)
        self.progress = progress
        self.next = 0

    def place(self, result: Result) -> None:
        self.slots[self.index[(result.invariant, result.dtype)]] = result
        while self.next < len(self.slots) and (ready := self.slots[self.next]) is not None:
            if self.progress is not None:
                self.progress(ready)
            self.next += 1

    def missing(self, dtypes: Sequence[str]) -> list[tuple[str, str]]:
        return [p for p, i in self.index.items() if p[1] in dtypes and self.slots[i] is None]


def _lost(lane: _Lane, pairs: list[tuple[str, str]]) -> list[Result]:
    how = death(lane.popen.wait())
    return unchecked(pairs, f"the verifier's process for {', '.join(lane.dtypes)} {how}")


def _receive(lane: _Lane, order: _InOrder) -> None:
    """One message from ``lane``: a result, the end, or why it could not go on."""
    try:
        kind, payload = pickle.loads(lane.conn.recv_bytes())
    except (EOFError, OSError, pickle.UnpicklingError):
        lane.finished = True
        for result in _lost(lane, order.missing(lane.dtypes)):
            order.place(result)
        return
    if kind == "result":
        order.place(payload)
    elif kind == "done":
        lane.finished = True
        lane.reading, lane.leftovers = payload
    elif kind == "diagnosis":
        lane.finished = True
        lane.diagnosis, lane.leftovers = payload
    elif kind == "target_error":
        raise TargetError(payload)
    else:
        raise RuntimeError(
            f"the verifier's process for {', '.join(lane.dtypes)} failed:\n{payload}"
        )


def run_lanes(
    spec: TargetSpec,
    plans: Sequence[RunPlan],
    pairs: Sequence[tuple[str, str]],
    progress: Callable[[Result], None] | None,
) -> tuple[list[Result], Reading | None, list[int]]:
    """Each plan (one lane's dtypes) in a process of its own, which runs it on a child of
    its own, undiagnosed: the results of every pair, in the order of ``pairs`` ((id, dtype
    name)); how the target was read; the pids of processes the target left running.

    A usage error of the target (``TargetError``) is raised here, as a one-lane run
    raises it.
    """
    order = _InOrder(pairs, progress)
    running = _run([_Lane(spec, plan, None) for plan in plans], order)
    leftovers = list(dict.fromkeys(pid for lane in running for pid in lane.leftovers))
    reading = next((lane.reading for lane in running if lane.reading is not None), None)
    return [r for r in order.slots if r is not None], reading, leftovers


def diagnose_in_lane(
    spec: TargetSpec, plan: RunPlan, results: list[Result]
) -> tuple[tuple[Diagnosis, ...], list[int]]:
    """The diagnosis of ``results`` (all of ``plan``'s pairs), probed in a lane of its own
    (none if the lane dies), and the pids of processes the target left running."""
    (lane,) = _run([_Lane(spec, plan, results)], _InOrder((), None))
    return lane.diagnosis, lane.leftovers


def _run(starting: list[_Lane], order: _InOrder) -> list[_Lane]:
    """Receive from each lane until every one is done; stop them all."""
    try:
        by_conn = {id(lane.conn): lane for lane in starting}
        while pending := [lane.conn for lane in starting if not lane.finished]:
            for conn in wait(pending):  # returns the ready ones among its inputs
                _receive(by_conn[id(conn)], order)
    finally:
        for lane in starting:
            lane.stop()
        for lane in starting:
            lane.sweep(starting)
    return starting
