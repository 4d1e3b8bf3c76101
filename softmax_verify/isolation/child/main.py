"""The child process of ``softmax-verify check``: it loads the target and serves its calls.

Everything the code under test can touch lives here: its module, its global state
(numpy's error state and print options, random seeds, monkeypatched functions, signal
handlers, the working directory) and its caches. The verifier (``isolation.remote``) sends one
request at a time and reads one reply:

- ``("load", release, TargetSpec, sys_path)`` ->
  ``("loaded", has_backward, name, reading, options, takes_upstream)`` (the options as the
  child read them, as plain data; ``takes_upstream``: a cross-entropy gradient's), or
  ``("target_error", message)`` for a target that cannot be read (a usage error), or
  ``("exited", status, location)`` for a ``sys.exit`` while the module was imported;
- ``("forward", release, x, want_x)`` -> ``("ok", y, handle, x_after | None)``;
- ``("forward_each", release, [x, ...])`` -> ``("ok", [y, ...])``: a forward of each, in
  one trip (their caches are not kept);
- ``("backward", release, dout, handle | None, cache | None, want_dout, watch_cache)`` ->
  ``("ok", dx, stages, dout_after | None, mutated_cache)``;
- ``("vjp", release, x, dout)`` -> ``("ok", dx)``: a forward and its backward, in one trip;
- ``("cache", release, handle, name)`` -> ``("ok", array | None)``: a named cache array;
- ``("source", release, stage)`` -> ``("ok", "file:line: text" | None)``;
- ``("reading", release)`` -> ``("ok", reading)``: the reading as the calls have taught
  it (which other libraries' arrays the code returned, ``target.arrays``);
- for the ``cross_entropy`` kind: ``("loss", release, x, labels)`` ->
  ``("ok", loss, x_written, labels_written)``; ``("grad", release, x, labels, upstream)``
  -> ``("ok", dx, x_written, labels_written, upstream_written, cache_written)``;
  ``("loss_each", release, [(x, labels), ...])`` -> ``("ok", [loss, ...])``;
- any call may instead reply ``("error", role, reason, location)``,
  ``("timeout", role, seconds)``, or ``("memory", message)`` when this process ran out of
  memory for the arrays outside the code's calls (decoding, reading or encoding them: the
  verifier's error, not the code's).

Caches stay here, keyed by handle; ``release`` lists the handles the verifier no longer
holds. Replies are builtins and encoded arrays only, sent through a ``Transport`` bound
before the target is imported (``transport``). The process gives up every capability
first thing (``linux.drop_capabilities``), is started in a session of its own, dies
with its parent (``PR_SET_PDEATHSIG``), ignores Ctrl-C (the verifier's to handle),
writes what the code prints to stderr, and records in ``fault_fd`` where it was,
through ``faulthandler``, when it crashes, is stopped with SIGABRT, or calls
``os._exit``. The verifier stops it and every process it started, in whatever session,
at the end (``isolation.reaper``).
"""

from __future__ import annotations

import contextlib
import faulthandler
import os
import signal
import sys
from collections.abc import Callable
from typing import Any, NoReturn

from softmax_verify.isolation.linux import die_with_parent, drop_capabilities

__all__ = ["main"]


def _record_exits(fault_fd: int) -> Callable[[int], NoReturn]:
    """Make ``os._exit`` leave a ``faulthandler`` dump first (where the code exited from);
    return the original, for this module's own exit."""
    real_exit = os._exit

    def _exit(status: int) -> NoReturn:
        faulthandler.dump_traceback(file=fault_fd, all_threads=False)
        real_exit(status)

    os._exit = _exit
    return real_exit


def main() -> None:
    """Entry point: ``python -c ... CONN_FD FAULT_FD PARENT_PID`` (see ``isolation.process``)."""
    conn_fd, fault_fd, parent = (int(arg) for arg in sys.argv[1:4])
    # First, while this process has one thread (capabilities are per thread): without
    # any, even as root it cannot open the non-dumpable verifier's /proc files.
    with contextlib.suppress(OSError):  # a kernel that refuses: the rest still holds
        drop_capabilities()
    die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    faulthandler.enable(file=fault_fd, all_threads=True)
    real_exit = _record_exits(fault_fd)
    # The channel's functions, bound before anything of the user's is imported.
    from softmax_verify.isolation.child.transport import Transport

    transport = Transport(conn_fd)
    from softmax_verify.isolation.child.serve import Server  # after the above: imports take time
    from softmax_verify.target.jax_buckets import persistent_cache
    from softmax_verify.target.quiet import quiet_imports

    persistent_cache()  # jax programs compiled here are kept for the next run
    quiet_imports()  # TensorFlow's import-time log lines stay off the user's stderr

    server = Server(transport)
    while True:
        reply: tuple[Any, ...]
        try:
            request: tuple[Any, ...] = transport.receive()
        except (EOFError, OSError):  # the verifier is gone or done
            real_exit(0)
        except MemoryError as exc:  # the request's own arrays, read to its end: not the code's
            reply = ("memory", f"{type(exc).__name__}: {exc}")
        else:
            if request[0] == "quit":
                sys.stdout.flush()
                sys.stderr.flush()
                real_exit(0)  # no interpreter shutdown: the user's threads and atexit hooks
            reply = server.handle(request)
        try:
            try:
                transport.send(reply)
            except MemoryError as exc:  # pickling the reply, before a byte of it is written
                transport.send(("memory", f"{type(exc).__name__}: {exc}"))
        except OSError:  # the verifier died while the call ran: no one to answer, or to tell
            real_exit(0)


if __name__ == "__main__":  # pragma: no cover - run by the verifier as a child process
    main()
