"""One child process running ``_child``, as the verifier sees it: start, ask, watch, stop.

- Started with ``subprocess`` (not multiprocessing: the child is no daemon, so the code
  under test may start processes of its own) in a new session, so whatever it starts
  can be found and stopped with it. Its stdout is the verifier's stderr; its stdin is
  empty. It dies with the verifier (``PR_SET_PDEATHSIG``, set by the child).
- Its death is watched through a pidfd (Linux), never through a pipe a grandchild could
  hold open; elsewhere by polling ``waitpid``.
- ``faulthandler`` writes into an anonymous temporary file (unlinked at creation, so
  nothing is left on disk whatever happens) that the verifier reads after a crash.
- A request not answered within its limit is a hang: the child gets SIGABRT (so
  ``faulthandler`` records where it was stuck), then SIGKILL.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from typing import Any

from softmax_verify.core.package import PACKAGE_DIR
from softmax_verify.isolation.wire import loads_untrusted

__all__ = ["ABORT_SECONDS", "ChildProcess", "ProcessEnded", "death", "python_entry", "stderr_fd"]

#: How long a child given SIGABRT gets to write its faulthandler dump and die.
ABORT_SECONDS = 2.0
#: How long a child told to quit gets to exit before it is killed.
_QUIT_SECONDS = 2.0
#: Without a pidfd, how often the child's liveness is polled while waiting.
_POLL_SECONDS = 0.05
_PACKAGE_PARENT = os.path.dirname(PACKAGE_DIR)
# The verifier's package must import in the child even when it runs from a checkout, but
# the checkout's folders (its top-level strategies/, say) must not shadow the user's
# modules: the folder is on sys.path only while the package itself is imported.


def python_entry(module: str, function: str) -> str:
    """The ``python -c`` code that imports ``module`` and calls ``function()``: the package
    imports from a checkout too, whose folders stay off ``sys.path`` afterwards."""
    return f"""import sys
added = {_PACKAGE_PARENT!r} not in sys.path
if added:
    sys.path.append({_PACKAGE_PARENT!r})
from {module} import {function}
if added:
    sys.path.remove({_PACKAGE_PARENT!r})
{function}()
"""


_ENTRY = python_entry("softmax_verify.isolation.child.main", "main")


class ProcessEnded(Exception):
    """The child died (``hung`` False) or was stopped for not answering (``hung`` True)."""

    def __init__(self, how: str, dump: str, *, hung: bool) -> None:
        self.how, self.dump, self.hung = how, dump, hung
        super().__init__(how)


def death(returncode: int | None) -> str:
    """How a process ended, in words: the signal that killed it or its exit status."""
    if returncode is not None and returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = "unknown signal"
        return f"crashed the process ({name}, signal {-returncode})"
    return f"ended the process (exit status {returncode})"


def stderr_fd() -> int:
    try:
        return sys.__stderr__.fileno() if sys.__stderr__ is not None else subprocess.DEVNULL
    except (OSError, ValueError):  # no real stderr (an embedding host): drop what it prints
        return subprocess.DEVNULL


def _session_members(session: int) -> list[int]:
    """Live processes of ``session`` (Linux ``/proc``; empty elsewhere), zombies excluded."""
    found = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 3 and int(fields[3]) == session and fields[0] != b"Z":
            found.append(int(entry))
    return found


class ChildProcess:
    """A running child: ``request`` sends one message and returns the decoded reply."""

    def __init__(self) -> None:
        # Closed in close(), not a with-block: it outlives this method, as the child does.
        self.fault = tempfile.TemporaryFile(prefix="softmax-verify-")  # noqa: SIM115
        ours, theirs = socket.socketpair()
        try:
            args = (str(theirs.fileno()), str(self.fault.fileno()), str(os.getpid()))
            self.popen = subprocess.Popen(
                [sys.executable, "-c", _ENTRY, *args],
                pass_fds=(theirs.fileno(), self.fault.fileno()),
                stdin=subprocess.DEVNULL,
                stdout=stderr_fd(),
                start_new_session=True,
            )
        finally:
            theirs.close()
        self.pid = self.popen.pid
        self.conn = Connection(ours.detach())
        self.pidfd: int | None = None
        if hasattr(os, "pidfd_open"):
            try:
                self.pidfd = os.pidfd_open(self.pid)
            except OSError:  # kernel before 5.3: poll instead
                self.pidfd = None
        self.leftovers: list[int] = []
        # One poll object for the life of the child: cheaper per call than a new selector.
        self.poller = select.poll()
        self.poller.register(self.conn.fileno(), select.POLLIN)
        if self.pidfd is not None:
            self.poller.register(self.pidfd, select.POLLIN)

    def request(self, message: tuple[Any, ...], limit: float | None) -> Any:
        """Send ``message``; the child's reply, or ProcessEnded after ``limit`` seconds."""
        try:
            self.conn.send_bytes(pickle.dumps(message, protocol=5))
        except OSError:
            self._ended()
        deadline = None if limit is None else time.monotonic() + limit
        conn_fd = self.conn.fileno()
        while True:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            if self.pidfd is None:
                remaining = _POLL_SECONDS if remaining is None else min(remaining, _POLL_SECONDS)
            ready = [
                fd for fd, _ in self.poller.poll(None if remaining is None else remaining * 1e3)
            ]
            if conn_fd in ready:
                try:
                    data = self.conn.recv_bytes()
                except (EOFError, OSError):
                    self._ended()
                return loads_untrusted(data)
            if ready or (self.pidfd is None and self.popen.poll() is not None):
                self._ended()
            if deadline is not None and time.monotonic() >= deadline:
                self._stuck()

    def _ended(self) -> None:
        self.popen.wait()
        dump = self.dump()
        self.stop()
        raise ProcessEnded(death(self.popen.returncode), dump, hung=False)

    def _stuck(self) -> None:
        try:
            os.kill(self.pid, signal.SIGABRT)
            self.popen.wait(ABORT_SECONDS)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
        dump = self.dump()
        self.stop()
        raise ProcessEnded("hung", dump, hung=True)

    def dump(self) -> str:
        """What faulthandler wrote, decoded leniently."""
        try:
            return os.pread(self.fault.fileno(), 1 << 20, 0).decode("utf-8", "replace")
        except (OSError, ValueError):
            return ""

    def quit(self) -> None:
        """Ask the child to exit, then stop it and what it left running."""
        if self.popen.poll() is None:
            try:
                self.conn.send_bytes(pickle.dumps(("quit",), protocol=5))
                self.popen.wait(_QUIT_SECONDS)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self.stop()

    def stop(self) -> None:
        """Kill the child and every process of its session; record the others' pids.
        Idempotent, and safe in a signal handler (no waiting beyond the child itself)."""
        if self.popen.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            self.popen.wait()
        for pid in _session_members(self.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
            if pid not in self.leftovers:
                self.leftovers.append(pid)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)  # where /proc cannot list the session
        self.close()

    def close(self) -> None:
        self.conn.close()
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None
        self.fault.close()
