"""A correct softmax whose module turns every floating-point warning into an error, and
guards its own arithmetic for that."""

import numpy as np

np.seterr(all="raise")


def forward(x):
    with np.errstate(over="ignore", under="ignore"):
        e = np.exp(x - x.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)


def backward(dout, y):
    with np.errstate(over="ignore", under="ignore"):
        return y * (dout - (dout * y).sum(axis=1, keepdims=True))
