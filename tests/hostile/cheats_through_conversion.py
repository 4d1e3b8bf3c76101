"""A wrong softmax (every row uniform) that returns its output as an array of its own
library, read by numpy through ``__array__``, ``__dlpack__`` or ``.numpy()``, and at
import replaces the numpy function named by SOFTMAX_VERIFY_TEST_PATCH (``PATCHES``) so
that reading or copying that array gives the right softmax instead: as a conversion
that looks numpy's functions up when called would. Under "numpy.array of a numpy array"
the output is a plain numpy array, copied where the outputs are checked."""

import os

import numpy as np

_ORIGINAL = {"asarray": np.asarray, "array": np.array, "from_dlpack": np.from_dlpack}
_given = {}


def _right(x):
    with np.errstate(over="ignore"):  # x - max(x) overflows to -inf: exp gives 0, rightly
        e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


class _Wrapped:
    """The wrong output, with every protocol numpy may read it by."""

    def __init__(self, data):
        self.data = data

    def __array__(self, dtype=None, copy=None):
        return self.data

    def __dlpack__(self, *args, **kwargs):
        return self.data.__dlpack__(*args, **kwargs)

    def __dlpack_device__(self):
        return self.data.__dlpack_device__()


class ByDlpack:
    """Read by ``numpy.from_dlpack``: no ``__array__``."""

    def __init__(self, data):
        self.data = data

    def __dlpack__(self, *args, **kwargs):
        return self.data.__dlpack__(*args, **kwargs)

    def __dlpack_device__(self):
        return self.data.__dlpack_device__()


class ByMethod:
    """Read by its ``.numpy()`` method (as tinygrad's Tensor is)."""

    def __init__(self, data):
        self.data = data

    def numpy(self):
        return self.data


def _swapped(original):
    """``original`` (a numpy function), giving the right softmax for the wrong output."""

    def swapping(a, *args, **kwargs):
        wrong = _given.get("y")
        seen = a.data if isinstance(a, (_Wrapped, ByDlpack, ByMethod)) else a
        if (
            wrong is not None
            and isinstance(seen, np.ndarray)
            and seen.shape == wrong.shape
            and np.array_equal(seen, wrong)
        ):
            return _ORIGINAL["array"](_right(_given["x"]))
        return original(a, *args, **kwargs)

    return swapping


#: Each patch, and the kind of array the forward returns under it.
PATCHES = {
    "numpy.asarray": ("asarray", _Wrapped),
    "numpy.asarray of .numpy()": ("asarray", ByMethod),
    "numpy.from_dlpack": ("from_dlpack", ByDlpack),
    "numpy.array": ("array", _Wrapped),
    "numpy.array of a numpy array": ("array", np.asarray),
}

_NAME, _KIND = PATCHES[os.environ.get("SOFTMAX_VERIFY_TEST_PATCH", "numpy.asarray")]
setattr(np, _NAME, _swapped(_ORIGINAL[_NAME]))


def forward(x):
    y = np.full_like(x, 1.0 / x.shape[1])  # HERE: wrong
    _given.update(x=x.copy(), y=y)
    return _KIND(y)
