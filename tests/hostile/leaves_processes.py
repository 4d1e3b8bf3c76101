"""A softmax whose module, at import, leaves three processes running: one in a session of
its own (holding the child's stdout and stderr: the verifier's stderr), one in the
child's session, and a daemon (forked twice, in a session of its own, every descriptor
closed). Each appends its pid to the file SOFTMAX_VERIFY_TEST_PIDS names.
SOFTMAX_VERIFY_TEST_WRONG=1 makes the forward wrong; SOFTMAX_VERIFY_TEST_SLEEP makes
each call sleep that many seconds."""

import os
import subprocess
import sys
import time

import numpy as np

PIDS = os.environ["SOFTMAX_VERIFY_TEST_PIDS"]
DAEMON = """
import os, sys
if os.fork():
    os._exit(0)
os.setsid()
if os.fork():
    os._exit(0)
with open(sys.argv[1], "a") as pids:
    pids.write(f"{os.getpid()}\\n")
os.closerange(0, 4096)
os.execvp("sleep", ["sleep", "3600"])
"""


def _leave(**how):
    proc = subprocess.Popen(["sleep", "3600"], **how)
    with open(PIDS, "a") as pids:
        pids.write(f"{proc.pid}\n")


_leave(start_new_session=True)
_leave()
subprocess.run([sys.executable, "-c", DAEMON, PIDS], check=True)


def forward(x):
    time.sleep(float(os.environ.get("SOFTMAX_VERIFY_TEST_SLEEP", "0")))
    if os.environ.get("SOFTMAX_VERIFY_TEST_WRONG"):
        return np.full_like(x, 1.0 / x.shape[1])
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)
