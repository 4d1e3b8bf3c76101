"""A correct softmax that takes its time: a run on it lasts long enough to be killed."""

import time

import numpy as np


def forward(x):
    time.sleep(0.2)
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)
