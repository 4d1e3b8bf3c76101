"""A wrong softmax (zeros) whose module, at import, leaves a process in a session of its
own that opens the report file named by SOFTMAX_VERIFY_TEST_OUTPUT and waits for the
verifier to exit, then writes a passing report into it: through the descriptor it
opened during the run, and by name."""

import os
import subprocess
import sys

import numpy as np

WATCHER = """
import os, sys, time
path, verifier = sys.argv[1], int(sys.argv[2])
early = open(path, "a")
while os.path.exists(f"/proc/{verifier}"):
    time.sleep(0.01)
forged = '{"passed": true, "forged": "after the run"}\\n'
early.seek(0)
early.truncate()
early.write(forged)
early.close()
with open(path, "w") as late:
    late.write(forged)
"""

subprocess.Popen(
    [sys.executable, "-c", WATCHER, os.environ["SOFTMAX_VERIFY_TEST_OUTPUT"], str(os.getppid())],
    start_new_session=True,
)


def forward(x):
    return np.zeros_like(x)
