"""A target loaded in a child process, as the verifier sees it: its lifetime and one request.

``ChildTarget`` starts a child (``process``), has it load the target (``_child``), sends
one request at a time and checks each reply's form, whatever the kind: the proxies of
the two protocols (``remote.RemoteImplementation``: a softmax's forward and backward;
``remote_loss.RemoteLossImplementation``: a cross-entropy's loss and gradient) add the
calls. What the child sends back is read as builtins and encoded arrays only (``wire``).

A call that crashes the child, or that neither returns nor is interrupted by the
child's own time limit within ``timeout + grace`` seconds, raises ``ProcessLost`` (a
``CallTimeout``, so the runner stops calling for that invariant at once). The next call
starts a new child. After one call had to be stopped, later calls get only
``RETRY_GRACE``: the run does not pay the full grace again and again for one cause.
"""

from __future__ import annotations

import os
import re
import sys
import sysconfig
from typing import Any

from numpy.typing import NDArray

from softmax_verify.core.errors import CallTimeout, ImplementationError
from softmax_verify.core.messages import one_line
from softmax_verify.core.package import PACKAGE_DIR, in_package
from softmax_verify.isolation.process import ABORT_SECONDS, ChildProcess, ProcessEnded
from softmax_verify.isolation.wire import WireError, decode_array
from softmax_verify.target.conventions import Reading
from softmax_verify.target.load import TargetError, TargetSpec

__all__ = [
    "GRACE",
    "LOAD_SECONDS",
    "RETRY_GRACE",
    "ChildTarget",
    "LoadFailed",
    "ProcessLost",
    "array_reply",
    "crash_location",
    "text_reply",
]

#: Beyond ``timeout``: the child's own time limit fires at ``timeout`` and its reply needs a
#: moment; a call still unanswered after this is stuck where that limit cannot reach.
GRACE = 3.0
#: The grace once a call has had to be stopped: the same cause need not be waited for again.
RETRY_GRACE = 0.5
#: Loading a target may import a framework (seconds) on a busy machine; added to ``timeout``.
LOAD_SECONDS = 30.0
#: Bytes per second assumed for moving arrays both ways: large arrays get time to travel.
_TRANSFER_RATE = 100e6
#: The longest reply a call may send: its arrays (y and x, or dx, dout and the named
#: stages) are at most a few times the size of what it was given; 16 times, plus room
#: for the messages, is far beyond what a real reply needs. A longer frame announced by
#: the child is refused before any of it is read (or allocated for).
_REPLY_ARRAYS = 16
_REPLY_ROOM = 64 << 20

#: The length of an "ok" reply to each request (see ``_child``).
_REPLY_LENGTHS = {
    "forward": 4,
    "forward_each": 2,
    "backward": 5,
    "vjp": 2,
    "cache": 2,
    "source": 2,
    "loss": 4,
    "grad": 6,
    "loss_each": 2,
    "reading": 2,
}

_SERVING = tuple(
    os.path.join(PACKAGE_DIR, "isolation", "child", name) for name in ("serve.py", "main.py")
)
_STDLIB_DIRS = tuple(
    {os.path.abspath(sysconfig.get_paths()[key]) + os.sep for key in ("stdlib", "platstdlib")}
)
_FRAME = re.compile(r'^\s+File "(?P<path>.*)", line (?P<line>\d+|\?\?\?) in (?P<name>.*)$')


class LoadFailed(Exception):
    """The child died, exited or hung while loading the target (not a usage error)."""

    def __init__(self, how: str, location: str | None) -> None:
        self.how, self.location = how, location
        super().__init__(how)


class ProcessLost(CallTimeout):
    """A call ended the child process (a crash, an exit) or had to be stopped (a hang)."""

    def __init__(self, role: str, reason: str, location: str | None) -> None:
        self.seconds = 0.0
        ImplementationError.__init__(self, role, reason, location=location)


# --- where a dead child was ----------------------------------------------------------------


def _is_users(path: str) -> bool:
    """False for frames of this package, numpy, Hypothesis and the standard library."""
    if path.startswith("<"):  # <frozen importlib._bootstrap> and the like
        return False
    path = os.path.abspath(path)
    parts = path.split(os.sep)
    if in_package(path) or "numpy" in parts or "hypothesis" in parts:
        return False
    in_stdlib = path.startswith(_STDLIB_DIRS)
    return not in_stdlib or "site-packages" in parts or "dist-packages" in parts


def crash_location(dump: str) -> str | None:
    """``file:line in function`` of the innermost user frame in a ``faulthandler`` dump.

    The thread serving the verifier's calls (the one with the child's loop on its stack)
    is searched first, then the thread that crashed, then the others.
    """
    blocks: list[tuple[str, list[tuple[str, str, str]]]] = []
    for line in dump.splitlines():
        if line.startswith(("Current thread", "Thread ", "Stack")):
            blocks.append((line, []))
        elif blocks and (match := _FRAME.match(line)):
            blocks[-1][1].append((match["path"], match["line"], match["name"]))

    def rank(block: tuple[str, list[tuple[str, str, str]]]) -> int:
        header, frames = block
        if any(os.path.abspath(path) in _SERVING for path, _, _ in frames):
            return 0
        return 1 if header.startswith(("Current thread", "Stack")) else 2

    for _, frames in sorted(blocks, key=rank):
        for path, line, name in frames:  # innermost first
            if _is_users(path):
                return one_line(f"{path}:{line} in {name}")
    return None


# --- the child's lifetime and one request -------------------------------------------------


class ChildTarget:
    """The target ``spec`` names, loaded in a child process, and one request at a time
    (see the module docstring); the proxies of ``remote`` and ``remote_loss`` add calls."""

    def __init__(self, spec: TargetSpec) -> None:  # no super().__init__: nothing local to wrap
        self.spec = spec
        self.timeout = spec.options.timeout
        self.name = spec.target or "reference"
        self._has_backward = False
        #: Whether the child's target takes an upstream (the cross_entropy kind's gradient).
        self._takes_upstream = False
        #: How the child read the target (``conventions.Reading``), once it has loaded it.
        self.reading: Reading | None = None
        #: The options the child says it was given (plain data, as it echoed them).
        self.child_options: dict[str, Any] = {}
        self._child: ChildProcess | None = None
        self._generation = 0
        self._released: list[tuple[int, int]] = []
        self._grace = GRACE
        #: Pids of processes the target left running, stopped with its child.
        self.leftovers: list[int] = []
        self._interrupted = False

    # -- lifetime --

    def load(self) -> None:
        """Start a child and load the target: TargetError (a usage error) or LoadFailed."""
        self._generation += 1
        child = self._child = ChildProcess()
        limit = None if self.timeout is None else self.timeout + LOAD_SECONDS
        try:
            # The verifier's sys.path too: the target may import what it can import.
            reply = child.request(("load", [], self.spec, tuple(sys.path)), limit, _REPLY_ROOM)
        except ProcessEnded as ended:
            self._discard()
            if self._interrupted:  # stopped by Ctrl-C or SIGTERM, not by its own doing
                raise KeyboardInterrupt from None
            how = f"did not finish loading within {limit:g} s and was stopped"
            raise LoadFailed(how if ended.hung else ended.how, crash_location(ended.dump)) from None
        except WireError as exc:
            self.close()
            raise LoadFailed(f"corrupted the verifier's channel ({exc})", None) from None
        if not isinstance(reply, tuple) or len(reply) not in (2, 3, 4, 6):
            self.close()
            raise LoadFailed("sent an unexpected reply while loading", None)
        if reply[0] == "target_error":
            self.close()
            raise TargetError(one_line(reply[1]))
        if reply[0] == "exited":
            self.close()
            raise LoadFailed(f"called sys.exit({one_line(reply[1])})", text_reply(reply[2]))
        if reply[0] == "error" and len(reply) == 4:  # a BaseException: KeyboardInterrupt
            self.close()
            raise LoadFailed(text_reply(reply[2]) or "failed", text_reply(reply[3]))
        try:
            if reply[0] != "loaded":
                raise TypeError(reply[0])
            self.reading = Reading.from_dict(reply[3])
            self.child_options = dict(reply[4])
        except (TypeError, KeyError, IndexError, ValueError):
            self.close()
            raise LoadFailed("sent an unexpected reply while loading", None) from None
        self._has_backward = reply[1] is True
        self._takes_upstream = reply[5] is True

    def read_again(self) -> None:
        """``reading`` as the child now states it, having called the target: which other
        libraries' arrays its code returned. Kept as it was when the child is gone (a
        new one is not started for it) or does not answer."""
        if self._child is None or self._interrupted:
            return
        try:
            reply = self._request("forward", ("reading",), 0)
            self.reading = Reading.from_dict(reply[1])
        except (ImplementationError, TypeError, KeyError, ValueError):
            return

    def close(self) -> None:
        """Stop the child and whatever it left running (their pids go to ``leftovers``)."""
        if self._child is not None:
            self._child.quit()
            self._discard()

    def kill(self) -> None:
        """Stop the child at once (a signal handler's path)."""
        if self._child is not None:
            self._child.stop()
            self._discard()

    def interrupt(self) -> None:
        """Stop the child for good: a later call raises KeyboardInterrupt instead of starting
        a new one (an interrupt raised inside a callback may be swallowed there)."""
        self._interrupted = True
        self.kill()

    def _discard(self) -> None:
        if self._child is not None:
            self.leftovers += [p for p in self._child.leftovers if p not in self.leftovers]
            self._child = None

    def _ensure(self, role: str) -> ChildProcess:
        if self._interrupted:
            raise KeyboardInterrupt
        if self._child is None:
            try:
                self.load()
            except (LoadFailed, TargetError) as exc:
                location = exc.location if isinstance(exc, LoadFailed) else None
                raise ProcessLost(role, f"{exc} while being loaded again", location) from None
        assert self._child is not None  # load() sets it or raises
        return self._child

    # -- one call --

    def _request(
        self, role: str, message: tuple[Any, ...], nbytes: int, calls: int = 1
    ) -> tuple[Any, ...]:
        child = self._ensure(role)
        release = [h for g, h in self._released if g == self._generation]
        self._released.clear()
        limit = None
        if self.timeout is not None:  # ``calls`` calls, each with its own time limit
            limit = calls * self.timeout + self._grace + 2 * nbytes / _TRANSFER_RATE
        try:
            max_reply = _REPLY_ROOM + _REPLY_ARRAYS * nbytes
            reply = child.request((message[0], release, *message[1:]), limit, max_reply)
            if self._interrupted:
                raise KeyboardInterrupt
        except ProcessEnded as ended:
            self._discard()
            if self._interrupted:
                raise KeyboardInterrupt from None
            raise self._lost(role, ended, limit) from None
        except WireError as exc:
            self.kill()
            raise ImplementationError(role, f"corrupted the verifier's channel ({exc})") from None
        if not isinstance(reply, tuple) or not reply:
            self.kill()
            raise ImplementationError(role, "corrupted the verifier's channel")
        if reply[0] == "timeout":
            said = reply[1] if reply[1] in ("forward", "backward") else role
            raise CallTimeout(said, self.timeout or 0.0)
        if reply[0] == "memory" and len(reply) == 2:  # the child's own arrays, not the code's
            raise MemoryError(
                "the child ran out of memory for the arrays it was sent or read, outside the "
                f"code's calls: {text_reply(reply[1])}"
            )
        if reply[0] == "error" and len(reply) == 4:
            said = reply[1] if reply[1] in ("forward", "backward") else role  # vjp: either
            raise ImplementationError(
                said, text_reply(reply[2]) or "failed", location=text_reply(reply[3])
            )
        if reply[0] != "ok" or len(reply) != _REPLY_LENGTHS[message[0]]:
            self.kill()
            raise ImplementationError(role, "corrupted the verifier's channel")
        return reply

    def _lost(self, role: str, ended: ProcessEnded, limit: float | None) -> ProcessLost:
        location = crash_location(ended.dump)
        if not ended.hung:
            return ProcessLost(role, ended.how, location)
        self._grace = RETRY_GRACE
        where = (
            f"the faulthandler dump shows it at {location}"
            if location
            else "the faulthandler dump shows no frame of the target's code"
        )
        stopped = f"the process was stopped after {limit or 0:.3g} s (+{ABORT_SECONDS:g} s to stop)"
        if ended.cut_short is not None:
            reason = f"corrupted the verifier's channel ({ended.cut_short}); {stopped}; {where}"
        else:
            reason = (
                f"did not return within the {self.timeout:g} s time limit and could not be "
                f"interrupted; {stopped}; {where}"
            )
        return ProcessLost(role, reason, location)

    @property
    def has_backward(self) -> bool:
        return self._has_backward


def array_reply(role: str, value: object) -> NDArray[Any]:
    """An encoded array from the child, rebuilt here; a malformed one is the role's error."""
    try:
        return decode_array(value)
    except WireError as exc:
        raise ImplementationError(role, f"corrupted the verifier's channel ({exc})") from None


def text_reply(value: object) -> str | None:
    """A text from the child as one line (None stays None)."""
    return None if value is None else one_line(value)
