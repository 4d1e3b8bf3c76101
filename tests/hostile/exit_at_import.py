"""A plain softmax whose module ends the process while it is imported (a script's habit)."""

import os

import numpy as np


def forward(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


os._exit(0)  # HERE
