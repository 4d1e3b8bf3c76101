"""A softmax with a temperature bug, hidden by patching np.exp when the module is imported:
anything that computes np.exp in this process sees the same wrong function."""

import numpy as np

_exp = np.exp


def _exp_with_temperature(x, *args, **kwargs):
    return _exp(np.asarray(x) / 2.0, *args, **kwargs)


np.exp = _exp_with_temperature


def forward(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)
