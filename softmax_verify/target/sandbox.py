"""Calling untrusted code: a time limit per call and the location of its failures.

In the main thread the limit is an interval timer (``SIGALRM``) whose handler
raises inside the running code, so a Python-level infinite loop or a sleep is
interrupted and nothing is left running. Elsewhere (no signals off the main
thread, or no ``setitimer`` on this platform) the call runs in a daemon worker
thread that is abandoned when it overruns; the verdict is the same, but the
stray thread keeps running until the process exits.
"""

from __future__ import annotations

import os
import signal
import threading
import traceback
import warnings
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import Any, TypeVar

from softmax_verify.core.errors import CallTimeout, ImplementationError
from softmax_verify.core.messages import describe_exception, one_line
from softmax_verify.core.package import in_package

__all__ = ["call_limited", "user_location"]

T = TypeVar("T")


class _Alarm(BaseException):
    """Raised by the timer inside the code under test.

    A BaseException, so an ``except Exception`` in that code cannot swallow it.
    """


def user_location(tb: TracebackType | None) -> str | None:
    """``file:line in function`` of the innermost frame outside numpy and this package."""
    found = None
    for frame in traceback.extract_tb(tb):
        path = os.path.abspath(frame.filename)
        if in_package(path) or f"{os.sep}numpy{os.sep}" in path:
            continue
        found = one_line(f"{frame.filename}:{frame.lineno} in {frame.name}")
    return found


def _describe_exception(role: str, exc: BaseException) -> ImplementationError:
    reason = "raised " + describe_exception(exc)
    return ImplementationError(role, reason, location=user_location(exc.__traceback__))


def _is_users(exc: BaseException) -> bool:
    """What the code under test raises is its failure, not the verifier's: SystemExit too (a
    stray ``sys.exit()`` must not end the run with status 0) and any other BaseException
    subclass, but not KeyboardInterrupt (the user's Ctrl-C) nor this module's own alarm."""
    return not isinstance(exc, (KeyboardInterrupt, _Alarm))


def _can_use_alarm() -> bool:
    return (
        hasattr(signal, "setitimer")
        and threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGALRM) in (signal.SIG_DFL, signal.SIG_IGN, None)
    )


def _on_alarm(signum: int, frame: FrameType | None) -> None:
    raise _Alarm


#: Where each warning already shown was issued: (category, file, line).
_shown: set[tuple[type[Warning], str, int]] = set()


def call_limited(role: str, func: Callable[..., T], *args: Any, timeout: float | None) -> T:
    """Call ``func(*args)``; any exception or overrun becomes an ImplementationError.

    Floating-point warnings from the code under test (overflow in exp, 0/0) are
    silenced: the verdict is on the values it returns, which the invariants judge,
    and a test suite running with warnings as errors must not turn them into crashes.
    Its other warnings (a library's ``UserWarning`` about a row of length 1, say) are
    shown once per place that issues them, not on each of the thousands of calls a run
    makes, and never raised.
    """
    caught: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            warnings.simplefilter("ignore", RuntimeWarning)
            return _call(role, func, args, timeout)
    finally:
        _show_once(caught)


def _show_once(caught: list[warnings.WarningMessage]) -> None:
    for message in caught:
        where = (message.category, message.filename, message.lineno)
        if where not in _shown:
            _shown.add(where)
            warnings.showwarning(message.message, message.category, message.filename,
                                 message.lineno)  # fmt: skip


def _call(role: str, func: Callable[..., T], args: tuple[Any, ...], timeout: float | None) -> T:
    # A limit beyond what timers and Thread.join accept (e.g. inf) means no limit, not an
    # OverflowError blamed on the code under test.
    if timeout is None or timeout >= threading.TIMEOUT_MAX:
        try:
            return func(*args)
        except BaseException as exc:
            if not _is_users(exc):
                raise
            raise _describe_exception(role, exc) from exc
    if _can_use_alarm():
        return _call_with_alarm(role, func, args, timeout)
    return _call_in_thread(role, func, args, timeout)


def _call_with_alarm(role: str, func: Callable[..., T], args: tuple[Any, ...], timeout: float) -> T:
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    try:
        signal.setitimer(signal.ITIMER_REAL, timeout)
        try:
            return func(*args)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    except _Alarm:
        raise CallTimeout(role, timeout) from None
    except BaseException as exc:
        if not _is_users(exc):
            raise
        raise _describe_exception(role, exc) from exc
    finally:
        signal.signal(signal.SIGALRM, previous)


def _call_in_thread(role: str, func: Callable[..., T], args: tuple[Any, ...], timeout: float) -> T:
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append((True, func(*args)))
        except BaseException as exc:
            outcome.append((False, exc))

    worker = threading.Thread(target=run, name=f"softmax-verify-{role}", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive() or not outcome:
        raise CallTimeout(role, timeout)
    ok, value = outcome[0]
    if ok:
        result: T = value
        return result
    if _is_users(value):
        raise _describe_exception(role, value) from value
    raise value
