"""A softmax that starts a helper process (holding every descriptor it inherits) on its
first call, and crashes on float32 input later."""

import ctypes
import subprocess
import sys

import numpy as np

_helper = []


def forward(x):
    if not _helper:
        _helper.append(
            subprocess.Popen(
                [sys.executable, "-c", "import time; time.sleep(3600)"], close_fds=False
            )
        )
    if x.dtype == np.float32:
        ctypes.string_at(0)  # HERE
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)
