"""A softmax that returns NaN on one call in ten (uninitialised memory, a race): the draw
comes from the random module, which a test runner may reseed."""

import random

import numpy as np


def forward(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    y = e / e.sum(axis=1, keepdims=True)
    if random.random() < 0.1:
        y[0, 0] = np.nan
    return y
