"""A correct softmax with a notebook's self-test that prints when the module is imported."""

import os

import numpy as np


def forward(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


print("self-test:", forward(np.array([[1.0, 2.0, 3.0]])))
os.write(1, b"self-test from C-level stdout\n")
