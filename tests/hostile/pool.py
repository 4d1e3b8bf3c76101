"""A correct softmax that splits its rows over a multiprocessing pool kept at module level."""

import multiprocessing

import numpy as np

_pool = None


def _rows(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def forward(x):
    global _pool
    if _pool is None:
        _pool = multiprocessing.get_context("fork").Pool(2)
    return np.concatenate(_pool.map(_rows, np.array_split(x, 2)))
