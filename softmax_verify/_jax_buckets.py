"""jax targets compiled once per row bucket, never with their columns padded.

``jax.jit`` compiles a program for every input shape; Hypothesis draws a new shape
for nearly every example, so a ci run spent most of its time compiling. Rows of a
softmax are independent, so the rows are padded (with zero rows, whose output is
dropped) up to ``MIN_ROWS`` or the next power of two above: every batch the
strategies draw (up to 24 rows) shares one program per column count, direction and
dtype, and the gradient checks' stacked batches a few more. The columns (the softmax
axis) are never padded: every row length, including each D % 8 remainder a
vectorized kernel handles separately, reaches the code under test as drawn. A kernel
bug that depends on the row count alone is hidden, as the price of the bucket.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["MAX_PROGRAMS", "MIN_ROWS", "BucketedJit", "row_bucket"]

#: The smallest row bucket: above the strategies' largest batch (24 rows).
MIN_ROWS = 32

#: Distinct (shape, dtype) pairs compiled before the compiled programs are dropped: each
#: stays mapped in memory, and a thorough run once failed with "LLVM compilation error:
#: Cannot allocate memory" and a segfault.
MAX_PROGRAMS = 512


def row_bucket(n: int) -> int:
    """The smallest power of two >= ``n`` and >= ``MIN_ROWS``."""
    return max(MIN_ROWS, 1 << max(0, (n - 1).bit_length()))


def _padded(a: NDArray[Any], rows: int) -> NDArray[Any]:
    if a.shape[0] == rows:
        return a
    out = np.zeros((rows, *a.shape[1:]), dtype=a.dtype)
    out[: a.shape[0]] = a
    return out


class BucketedJit:
    """``forward(x) -> (y, cache)`` and ``backward(dout, cache) -> dx`` for a jax function
    ``fn`` of an (N, D) array, jitted, with N padded to ``row_bucket(N)``.

    The backward is ``jax.vjp(fn, a)`` applied to the upstream, compiled as one program
    (the forward is recomputed inside it, as ``jax.grad`` of a jitted function would).
    """

    def __init__(self, fn: Callable[[Any], Any]) -> None:
        import jax

        self._jax: Any = jax
        self._forward = jax.jit(fn)
        self._backward = jax.jit(lambda a, g: jax.vjp(fn, a)[1](g)[0])
        self._seen: set[tuple[tuple[int, ...], str]] = set()

    def _note(self, shape: tuple[int, ...], dtype: np.dtype[Any]) -> None:
        key = (shape, dtype.str)
        if key not in self._seen:
            if len(self._seen) >= MAX_PROGRAMS:
                self._jax.clear_caches()
                self._seen.clear()
            self._seen.add(key)

    def forward(self, x: NDArray[Any]) -> tuple[NDArray[Any], tuple[Any, int]]:
        n = x.shape[0]
        padded = _padded(x, row_bucket(n))
        self._note(padded.shape, padded.dtype)
        a = self._jax.numpy.asarray(padded)
        return np.array(self._forward(a))[:n], (a, n)

    def backward(self, dout: NDArray[Any], cache: tuple[Any, int]) -> NDArray[Any]:
        a, n = cache
        g = self._jax.numpy.asarray(_padded(dout, a.shape[0]))
        return np.array(self._backward(a, g))[:n]
