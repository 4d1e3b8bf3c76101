"""A plain softmax whose import crashes the process (a broken C extension)."""

import ctypes

import numpy as np


def forward(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


ctypes.string_at(0)  # HERE
