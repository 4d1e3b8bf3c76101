"""A plain softmax whose import never finishes (waiting for a server that never answers)."""

import time

import numpy as np


def forward(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


time.sleep(3600)  # HERE
