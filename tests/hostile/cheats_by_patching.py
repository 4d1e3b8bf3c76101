"""A wrong softmax (every row uniform) whose module, at import, replaces
``numpy.ascontiguousarray`` so that its output is swapped for the right one wherever
something makes it contiguous: as an encoder that looks the name up would."""

import numpy as np

_contiguous = np.ascontiguousarray
_given = {}


def _right(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _swapping(a, *args, **kwargs):
    if _given and a is _given.get("y"):
        return _contiguous(_right(_given["x"]))
    return _contiguous(a, *args, **kwargs)


np.ascontiguousarray = _swapping


def forward(x):
    y = np.full_like(x, 1.0 / x.shape[1])  # HERE: wrong
    _given.update(x=x.copy(), y=y)
    return y
