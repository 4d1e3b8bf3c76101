"""The ``softmax-verify`` command's first process: it runs the command line in a process
of its own (the verifier), outlives it, and stops whatever the verifier leaves behind.

The verifier is a child subreaper while it owns a child (``reaper``) and stops every
process the code under test started when it stops the child, however the run ends:
normally, by an error, by SIGTERM or Ctrl-C. SIGKILL leaves it no time for that: the
child dies with it (``PR_SET_PDEATHSIG``), but what the target started would be
reparented to init and live on. So the process the user starts (the console script,
``python -m softmax_verify``) is this small supervisor, itself a subreaper and not
dumpable (it holds the report's stdout too), which starts the verifier:

- SIGKILL of the supervisor: the verifier gets SIGTERM (its ``PR_SET_PDEATHSIG``) and
  stops its child and every descendant, as on any SIGTERM;
- SIGKILL of the verifier (by the target, the out-of-memory killer, a user): everything
  the target started is reparented here and stopped once the verifier is gone;
- SIGTERM, SIGHUP or SIGINT sent to the supervisor by another process are passed on to
  the verifier (a terminal's Ctrl-C reaches both: it is not passed on twice). A verifier
  still running ``STOP_SECONDS`` after a SIGTERM or SIGHUP is killed.

Nothing stops both processes killed at once (SIGKILL to the whole process group). The
exit status is the verifier's; if a signal ended it, the supervisor ends by the same
one. Elsewhere than Linux (no subreaper) the command line runs in this process, as it
did before. This module imports the standard library and ``isolation.linux`` and
``reaper`` only, so that it starts in milliseconds; the verifier imports the rest.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence

from softmax_verify.isolation.linux import LINUX, set_child_subreaper, set_dumpable
from softmax_verify.isolation.reaper import SweepTimeout, Tree

__all__ = ["STOP_SECONDS", "main", "supervise", "verifier_code"]

#: How long the verifier gets to stop its child after a SIGTERM or SIGHUP passed on.
STOP_SECONDS = 10.0
#: The signals passed on to the verifier (when another process sent them).
_PASSED_ON = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)
#: ``si_code`` of a signal the kernel sent (a terminal's Ctrl-C); a process's is <= 0.
_SI_KERNEL = 0x80
#: The command line's module, run by name in the verifier's process (never imported here:
#: it imports the engine, which takes a second or two).
COMMAND_MODULE = "softmax_verify.cli"


def verifier_code(supervisor: int, module: str = COMMAND_MODULE) -> str:
    """The ``python -c`` code of the verifier: this process's ``sys.path`` exactly (the
    console script's, or ``python -m``'s with the working directory), SIGTERM when the
    supervisor dies, the signals blocked here unblocked, then ``module.main()``."""
    unblocked = [int(s) for s in (*_PASSED_ON, signal.SIGCHLD)]
    return f"""import signal, sys
sys.path[:] = {sys.path!r}
from softmax_verify.isolation.linux import die_with_parent
die_with_parent({supervisor}, signal.SIGTERM)
try:
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {unblocked!r})
    from {module} import main
except KeyboardInterrupt:  # Ctrl-C while the engine is imported: as main's own
    sys.stderr.write("softmax-verify: interrupted\\n")
    sys.exit(130)
sys.exit(main())
"""


def supervise(argv: Sequence[str], module: str = COMMAND_MODULE) -> int:
    """Run ``module.main()`` with ``argv`` in a verifier process under this one (Linux);
    the verifier's exit status once every process it left is stopped."""
    set_dumpable(False)  # it holds the report's stdout too
    set_child_subreaper(True)  # for its whole life: this process is the command's own
    waited = {*_PASSED_ON, signal.SIGCHLD}  # blocked here, waited for below
    signal.pthread_sigmask(signal.SIG_BLOCK, waited)
    tree = Tree()
    verifier = subprocess.Popen([sys.executable, "-c", verifier_code(os.getpid(), module), *argv])
    tree.attach(verifier.pid)
    _wait(verifier, waited)
    with contextlib.suppress(SweepTimeout):  # in the kernel past any signal: nothing to do
        tree.sweep(own=())
    return _exit_status(verifier.returncode)


def _wait(verifier: subprocess.Popen[bytes], waited: set[signal.Signals]) -> None:
    """Until the verifier has ended: signals another process sent here passed on to it."""
    kill_at: float | None = None
    while verifier.poll() is None:
        timeout = 1.0 if kill_at is None else max(0.0, kill_at - time.monotonic())
        info = signal.sigtimedwait(waited, timeout)
        if kill_at is not None and time.monotonic() >= kill_at and verifier.poll() is None:
            verifier.kill()
        if info is None or info.si_signo == signal.SIGCHLD or info.si_code == _SI_KERNEL:
            continue  # the terminal's Ctrl-C reached the verifier itself
        verifier.send_signal(info.si_signo)
        if info.si_signo != signal.SIGINT and kill_at is None:
            kill_at = time.monotonic() + STOP_SECONDS


def _exit_status(returncode: int) -> int:
    """The verifier's exit status; if a signal ended it, this process ends by that signal
    (after one line on stderr, unless it was one passed on)."""
    if returncode >= 0:
        return returncode
    signum = -returncode
    if signum not in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        try:
            name = signal.Signals(signum).name
        except ValueError:
            name = "a signal"
        sys.stderr.write(
            f"softmax-verify: the verifier's process was ended by {name} (signal {signum}); "
            "no report\n"
        )
        sys.stderr.flush()
    if signum != signal.SIGKILL:  # its disposition cannot be changed, nor need be
        signal.signal(signum, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signum})
    os.kill(os.getpid(), signum)
    return 128 + signum  # a signal whose default is to be ignored: the shell's number


def main() -> int:
    """Entry point of the ``softmax-verify`` console script and ``python -m
    softmax_verify``: the verifier's exit status."""
    if not LINUX or not hasattr(signal, "sigtimedwait"):  # no subreaper: in this process
        command: int = importlib.import_module(COMMAND_MODULE).main()
        return command
    return supervise(sys.argv[1:])
