"""Every process descended from a child of the verifier, found, stopped and reaped (Linux).

While this process owns a child (``custody``) it is a child subreaper: a descendant
whose parent dies is reparented to it rather than to init, whatever session or process
group it put itself in (``start_new_session``, a double-forked daemon). So a ``Tree``
made before the child is started finds them all: the descendants of the child while it
lives (``/proc`` ppid links), and afterwards the orphans this process adopted::

    custody.take()                         # subreaper on, this process undumpable
    tree = Tree()                          # before the start: our children of the moment
    popen = subprocess.Popen(...)
    tree.attach(popen.pid)                 # right after: the child's start time
    ...
    popen.kill(); popen.wait()             # the child itself: its Popen reaps it
    leftovers = tree.sweep(own={popen.pid})
    custody.give_back()                    # after the sweep: the settings before

An adopted orphan is told from this process's other children (a ``Popen`` of the host
program, say) by three filters: it was not our child when the ``Tree`` was made, it
started no earlier than the child, and it is not in ``own``. ``sweep`` waits only for
pids it identified so, never ``waitpid(-1)``: another ``Popen`` of this process never
loses its child's exit status to it (``subprocess`` reads ECHILD as status 0). Kills go
through a pidfd after the start time is checked again, so a recycled pid is never
signalled.

The attribute is on only while a child is owned: left on in a long-lived process (a
test worker calling ``verify_isolated``), every orphan of unrelated code would become a
zombie of that process. It is turned off only after the sweep: once it is off, the
children of an adopted process go to init when that process dies.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Collection
from dataclasses import dataclass

from softmax_verify.isolation.linux import (
    LINUX,
    is_child_subreaper,
    is_dumpable,
    set_child_subreaper,
    set_dumpable,
)

__all__ = ["SWEEP_SECONDS", "Proc", "SweepTimeout", "Tree", "custody", "read_proc", "scan"]

#: How long a sweep may take to see every member dead (one in uninterruptible sleep can
#: outlast any signal) before it gives up and names the survivors.
SWEEP_SECONDS = 5.0


class _Custody:
    """Reference-counted: the first owner of a child turns the subreaper attribute on and
    the dumpable flag off, the last one restores what they were (both are process-wide)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._owners = 0
        self._before = (False, True)

    def take(self) -> None:
        with self._lock:
            if self._owners == 0 and LINUX:
                self._before = (is_child_subreaper(), is_dumpable())
                set_child_subreaper(True)
                set_dumpable(False)
            self._owners += 1

    def give_back(self) -> None:
        with self._lock:
            self._owners -= 1
            if self._owners == 0 and LINUX:
                subreaper, dumpable = self._before
                set_child_subreaper(subreaper)
                set_dumpable(dumpable)


#: This process's custody of its children (one per process).
custody = _Custody()


@dataclass(frozen=True)
class Proc:
    """One process as ``/proc/<pid>/stat`` shows it."""

    pid: int
    ppid: int
    state: str  # "R", "S", "D", "Z", ...
    starttime: int  # clock ticks after boot (field 22)


def read_proc(pid: int) -> Proc | None:
    """``/proc/<pid>/stat``, parsed; None when the process is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            raw = stat.read()
    except OSError:
        return None
    try:  # the command (field 2) may hold spaces and parentheses: split after the last ")"
        fields = raw.rsplit(b")", 1)[1].split()
        return Proc(pid, int(fields[1]), fields[0].decode(), int(fields[19]))
    except (IndexError, ValueError):
        return None


def scan() -> dict[int, Proc]:
    """Every process ``/proc`` shows (threads are not listed there); empty without /proc."""
    try:
        entries = os.listdir("/proc")
    except OSError:
        return {}
    found: dict[int, Proc] = {}
    for entry in entries:
        if entry.isdigit() and (proc := read_proc(int(entry))) is not None:
            found[proc.pid] = proc
    return found


def _my_children() -> set[int]:
    """This process's children, from ``/proc/self/task/*/children`` (a child belongs to
    the thread that forked it): no scan of ``/proc``. A full scan where that file is
    missing (a kernel without CONFIG_PROC_CHILDREN)."""
    me, found = os.getpid(), set[int]()
    try:
        tasks = os.listdir("/proc/self/task")
        for task in tasks:
            with open(f"/proc/self/task/{task}/children", "rb") as listed:
                found.update(int(pid) for pid in listed.read().split())
    except FileNotFoundError:
        return {p.pid for p in scan().values() if p.ppid == me}
    except OSError:
        return found
    return found


def _kill(proc: Proc) -> bool:
    """SIGKILL ``proc`` once its pid is pinned (a pidfd) and still names the process the
    scan saw (same start time). True if the signal was sent."""
    try:
        pidfd = os.pidfd_open(proc.pid)
    except ProcessLookupError:
        return False
    except OSError:  # no pidfds (kernel before 5.3): a pid we saw alive, signalled at once
        try:
            os.kill(proc.pid, signal.SIGKILL)
            return True
        except OSError:
            return False
    try:
        now = read_proc(proc.pid)
        if now is None or now.starttime != proc.starttime:
            return False
        signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        return True
    except OSError:
        return False
    finally:
        os.close(pidfd)


def _reaped(pid: int) -> bool:
    """``waitpid(pid, WNOHANG)`` for one pid known to be our child: True once reaped."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:  # no longer ours: someone else reaped it
        return True
    return done == pid


class Tree:
    """The processes descended from one child of this process (see the module doc).

    Make it *before* starting the child, ``attach`` the child's pid right after."""

    def __init__(self) -> None:
        self.me = os.getpid()
        self.before = _my_children() if LINUX else set()
        self.root = -1
        self.since = 0

    def attach(self, root: int) -> None:
        """``root``: the child just started (not reaped yet, so /proc still shows it)."""
        found = read_proc(root)
        self.root, self.since = root, (found.starttime if found is not None else 0)

    def members(self, table: dict[int, Proc], own: Collection[int]) -> list[Proc]:
        """``root``'s descendants and our adopted orphans, zombies included; never
        ``root`` itself, this process or ``own``."""
        children: dict[int, list[Proc]] = {}
        for proc in table.values():
            children.setdefault(proc.ppid, []).append(proc)
        tops = [p for p in children.get(self.root, []) if p.starttime >= self.since]
        tops += [
            p
            for p in children.get(self.me, [])
            if p.pid != self.root
            and p.pid not in own
            and p.pid not in self.before
            and p.starttime >= self.since
        ]
        found: dict[int, Proc] = {}
        while tops:
            proc = tops.pop()
            if proc.pid not in found and proc.pid != self.me and proc.pid not in own:
                found[proc.pid] = proc
                tops += children.get(proc.pid, [])
        return list(found.values())

    def sweep(self, own: Collection[int] = (), timeout: float = SWEEP_SECONDS) -> list[int]:
        """Kill every member (SIGKILL) and reap those that are our children, until a scan
        finds none: the pids that were alive when found. TimeoutError (its ``pids``: the
        survivors) if some cannot be ended within ``timeout``."""
        if not LINUX or self.root < 0:
            return []
        if read_proc(self.root) is None and not (_my_children() - self.before - set(own)):
            return []  # root is gone, so its descendants would all be our children now
        deadline = time.monotonic() + timeout
        killed: list[int] = []
        while members := self.members(scan(), own):
            for proc in members:
                if proc.state != "Z" and _kill(proc) and proc.pid not in killed:
                    killed.append(proc.pid)
            mine = [p.pid for p in members if p.ppid == self.me]
            while mine := [pid for pid in mine if not _reaped(pid)]:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.001)  # killed processes die at once, unless in the kernel
            if time.monotonic() > deadline:
                left = [p.pid for p in self.members(scan(), own) if p.state != "Z"]
                if left:
                    raise SweepTimeout(left, timeout)
                return killed  # only zombies of processes that are not ours remain
        return killed


class SweepTimeout(TimeoutError):
    """Processes that outlived SIGKILL for the whole sweep (uninterruptible sleep)."""

    def __init__(self, pids: list[int], seconds: float) -> None:
        self.pids = pids
        super().__init__(f"processes {pids} did not die within {seconds:g} s")
