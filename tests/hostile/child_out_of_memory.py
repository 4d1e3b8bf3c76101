"""A correct softmax in a child that runs out of memory decoding the inputs it is sent,
outside any call of the code (simulated: at import it finds the child's server through
the garbage collector and makes its decoding raise MemoryError, as numpy does when it
cannot allocate). The verifier must report its own shortage, not an error of this code."""

import gc

import numpy as np


def _short_of_memory(encoded):
    raise MemoryError("Unable to allocate 74.5 GiB for an array with shape (100000, 100000)")


for _obj in gc.get_objects():
    if type(_obj).__name__ == "Server" and type(_obj).__module__.endswith("child.serve"):
        _obj.decode = _short_of_memory


def forward(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))  # HERE
    return e / e.sum(axis=1, keepdims=True)
