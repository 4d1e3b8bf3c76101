"""A correct softmax in a child that cannot hold the first large request it is sent
(simulated: at import it finds the child's transport through the garbage collector and
makes its first allocation of a large request's bytes raise MemoryError, as bytearray
does when it cannot allocate). The child must read that request to its end, say it ran
out of memory, and go on serving the next requests."""

import gc

import numpy as np

_failed = []


def _patched(original):
    def allocate(size):
        if isinstance(size, int) and size > 4096 and not _failed:
            _failed.append(size)
            raise MemoryError(f"cannot allocate {size} bytes for a request")
        return original(size)

    return allocate


for _obj in gc.get_objects():
    if type(_obj).__name__ == "Transport" and type(_obj).__module__.endswith("child.transport"):
        _obj._bytearray = _patched(_obj._bytearray)


def forward(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))  # HERE
    return e / e.sum(axis=1, keepdims=True)
