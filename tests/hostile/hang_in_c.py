"""A softmax whose every call blocks where the time limit cannot interrupt it (here: the
alarm signal blocked, then a wait)."""

import signal
import time

import numpy as np


def forward(x):
    signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGALRM])
    time.sleep(3600)  # HERE
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)
