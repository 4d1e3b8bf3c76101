"""A lane's own process: ``python -c ... CONN_FD PARENT_PID`` (started by ``lanes``).

It reads its request (the verifier's ``sys.path``, the target, its share of the plan, and
the results to diagnose, if that is its job), runs it with a child of its own through
``verifier``, and sends back each result, then how the target was read and what it left
running. It dies with the verifier that started it.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import signal
import sys
import threading
import time
import traceback
from multiprocessing.connection import Connection

from softmax_verify.isolation.lanes import STOP_SECONDS
from softmax_verify.isolation.linux import die_with_parent
from softmax_verify.isolation.verifier import diagnosis_in_child, in_child
from softmax_verify.target.load import TargetError

__all__ = ["lane_main"]

#: How often a lane checks that the verifier that started it is still there.
_WATCH_SECONDS = 0.25


def _orphan_watch(parent: int) -> None:
    """The last resort if SIGTERM did not end this lane once the verifier died (its handler
    stops the child first, and a signal landing inside that same cleanup can fail): a
    while after the parent is gone, SIGKILL; the child then dies by its own
    ``PR_SET_PDEATHSIG``."""
    while os.getppid() == parent:
        time.sleep(_WATCH_SECONDS)
    time.sleep(STOP_SECONDS)
    os.kill(os.getpid(), signal.SIGKILL)


def lane_main() -> None:
    """Entry point of a lane: ``python -c ... CONN_FD PARENT_PID`` (see ``_Lane``)."""
    conn_fd, parent = int(sys.argv[1]), int(sys.argv[2])
    die_with_parent(parent, signal.SIGTERM)
    threading.Thread(target=_orphan_watch, args=(parent,), daemon=True).start()
    conn = Connection(conn_fd)

    def send(kind: str, payload: object) -> None:
        conn.send_bytes(pickle.dumps((kind, payload), protocol=5))

    sys_path, spec, plan, results = pickle.loads(conn.recv_bytes())
    # The verifier's own sys.path entries, after this process's: the child gets them too.
    sys.path.extend(p for p in sys_path if p not in sys.path)

    try:
        if results is not None:
            send("diagnosis", diagnosis_in_child(spec, plan, results))
        else:
            reporting = dataclasses.replace(plan, progress=lambda result: send("result", result))
            outcome = in_child(spec, reporting, diagnose=False)
            send("done", (outcome.reading, outcome.leftovers))
    except TargetError as exc:
        send("target_error", str(exc))
    except Exception:  # the verifier's own bug: the parent reports it
        send("failed", traceback.format_exc())
    conn.close()
