"""One child process running ``isolation.child``, as the verifier sees it: start, ask,
watch, stop.

- Started with ``subprocess`` (not multiprocessing: the child is no daemon, so the code
  under test may start processes of its own) in a new session. Its stdout is the
  verifier's stderr; its stdin is empty. It dies with the verifier
  (``PR_SET_PDEATHSIG``, set by the child).
- While a child is owned, this process is a child subreaper and not dumpable
  (``reaper.custody``): whatever the child starts, in whatever session, stays a
  descendant of this process, and is found, stopped and named when the child is
  stopped (``reaper.Tree``); the child cannot open this process's descriptors.
- Its death is watched through a pidfd (Linux), never through a pipe a grandchild could
  hold open; elsewhere by polling ``waitpid``.
- Every reply is read under the call's deadline, header and body (``frames``): a child
  that sends half a frame is an error of that call, not a hang of the verifier.
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
from typing import Any

from softmax_verify.core.package import PACKAGE_DIR
from softmax_verify.isolation.frames import (
    ChannelClosed,
    FrameError,
    FrameTimeout,
    poll_milliseconds,
    read_frame,
    write_frame,
)
from softmax_verify.isolation.linux import LINUX
from softmax_verify.isolation.reaper import SweepTimeout, Tree, custody
from softmax_verify.isolation.wire import loads_untrusted

__all__ = ["ABORT_SECONDS", "ChildProcess", "ProcessEnded", "death", "python_entry", "stderr_fd"]

#: How long a child given SIGABRT gets to write its faulthandler dump and die.
ABORT_SECONDS = 2.0
#: How long a child told to quit gets to exit before it is killed.
_QUIT_SECONDS = 2.0
#: How long a child sent SIGKILL gets to be reaped before the sweep goes on without it
#: (one in uninterruptible sleep; a signal handler interrupting a wait for it).
_KILLED_SECONDS = 1.0
#: Without a pidfd, how often (milliseconds) the child's liveness is polled while waiting.
_POLL_MS = 50
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
    """The child died (``hung`` False) or was stopped for not answering (``hung`` True);
    ``cut_short``: what it had sent of a reply it did not finish, if it started one."""

    def __init__(self, how: str, dump: str, *, hung: bool, cut_short: str | None = None) -> None:
        self.how, self.dump, self.hung, self.cut_short = how, dump, hung, cut_short
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


class ChildProcess:
    """A running child: ``request`` sends one message and returns the decoded reply."""

    def __init__(self) -> None:
        # Closed in close(), not a with-block: it outlives this method, as the child does.
        self.fault = tempfile.TemporaryFile(prefix="softmax-verify-")  # noqa: SIM115
        ours, theirs = socket.socketpair()
        custody.take()
        self._in_custody = True
        try:
            self.tree = Tree()  # before the start: this process's children of the moment
            args = (str(theirs.fileno()), str(self.fault.fileno()), str(os.getpid()))
            self.popen = subprocess.Popen(
                [sys.executable, "-c", _ENTRY, *args],
                pass_fds=(theirs.fileno(), self.fault.fileno()),
                stdin=subprocess.DEVNULL,
                stdout=stderr_fd(),
                start_new_session=True,
            )
        except BaseException:
            ours.close()
            self.fault.close()
            self._give_back()
            raise
        finally:
            theirs.close()
        self.pid = self.popen.pid
        self.tree.attach(self.pid)
        self.sock = ours
        self.pidfd: int | None = None
        if hasattr(os, "pidfd_open"):
            try:
                self.pidfd = os.pidfd_open(self.pid)
            except OSError:  # kernel before 5.3: poll instead
                self.pidfd = None
        self.leftovers: list[int] = []
        # One poll object for the life of the child: cheaper per call than a new selector.
        self.poller = select.poll()
        self.poller.register(self.sock.fileno(), select.POLLIN)
        if self.pidfd is not None:
            self.poller.register(self.pidfd, select.POLLIN)

    def request(self, message: tuple[Any, ...], limit: float | None, max_reply: int) -> Any:
        """Send ``message``; the child's reply (at most ``max_reply`` bytes), ProcessEnded
        once ``limit`` seconds have passed without a whole one, or a ``WireError`` (a
        ``frames.FrameError``) for a reply cut short or malformed."""
        deadline = None if limit is None else time.monotonic() + limit
        try:
            write_frame(self.sock, pickle.dumps(message, protocol=5), deadline=deadline)
        except FrameTimeout:  # the child stopped reading
            self._stuck()
        except OSError:
            self._ended()
        self._wait(deadline)
        try:
            data = read_frame(self.sock, max_size=max_reply, deadline=deadline, died=self.pidfd)
        except FrameTimeout as late:  # half a reply, then nothing: a hang, stopped as one
            self._stuck(str(late))  # (before OSError: a FrameTimeout is a TimeoutError)
        except (ChannelClosed, OSError):
            self._ended()
        except FrameError:
            if self.popen.poll() is not None:
                self._ended()  # it died mid-frame: its death is the news
            self.stop()
            raise
        return loads_untrusted(data)

    def _wait(self, deadline: float | None) -> None:
        """Until the reply's first byte: ProcessEnded if the child dies or the time is up."""
        sock_fd = self.sock.fileno()
        while True:
            wait = poll_milliseconds(deadline)
            if self.pidfd is None:
                wait = min(wait if wait is not None else _POLL_MS, _POLL_MS)
            ready = [fd for fd, _ in self.poller.poll(wait)]
            if sock_fd in ready:
                return
            if ready or (self.pidfd is None and self.popen.poll() is not None):
                self._ended()
            if deadline is not None and time.monotonic() >= deadline:
                self._stuck()

    def _ended(self) -> None:
        # It closed the channel or died: its exit status, if it comes soon (a child that
        # closed the channel and lives on is killed by ``stop``).
        self._reap(_QUIT_SECONDS)
        dump = self.dump()
        self.stop()
        raise ProcessEnded(death(self.popen.returncode), dump, hung=False)

    def _stuck(self, cut_short: str | None = None) -> None:
        try:
            os.kill(self.pid, signal.SIGABRT)
            self.popen.wait(ABORT_SECONDS)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
        dump = self.dump()
        self.stop()
        raise ProcessEnded("hung", dump, hung=True, cut_short=cut_short)

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
                write_frame(
                    self.sock,
                    pickle.dumps(("quit",), protocol=5),
                    deadline=time.monotonic() + _QUIT_SECONDS,
                )
                self.popen.wait(_QUIT_SECONDS)
            except (OSError, FrameTimeout, subprocess.TimeoutExpired):
                pass
        self.stop()

    def stop(self) -> None:
        """Kill the child and every process descended from it, whatever its session, and
        record the pids of those still running. Idempotent; safe in a signal handler (it
        waits only for processes it has killed, and never in ``Popen``'s lock)."""
        if self.popen.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            self._reap(_KILLED_SECONDS)
        try:
            found = self.tree.sweep(own={self.pid})
        except SweepTimeout as stuck:  # in the kernel past any signal: named all the same
            found = stuck.pids
        self.leftovers += [pid for pid in found if pid not in self.leftovers]
        if not LINUX:  # no subreaper, no /proc: the child's own process group at least
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGKILL)
        self.close()

    def _reap(self, seconds: float) -> None:
        """Wait up to ``seconds`` for the child's exit status. ``Popen.wait()`` without a
        timeout holds a lock while it blocks in ``waitpid``: a SIGINT or SIGTERM handler
        that runs in that wait and stops the child (``stop``) would wait for the same lock
        forever. With a timeout, ``Popen`` only polls under the lock."""
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(seconds)

    def close(self) -> None:
        self.sock.close()
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None
        self.fault.close()
        self._give_back()

    def _give_back(self) -> None:
        """The end of this child's custody (once): after the sweep, never before it."""
        if self._in_custody:
            self._in_custody = False
            custody.give_back()
