"""Drawing primitives shared by the array strategies.

Drawing every entry of a 24x64 array through Hypothesis costs several
milliseconds per example and makes the smallest natural example large enough
to trip health checks. The array strategies therefore split the work:

* *structure* (shape, layout, which rows are special and of what kind, their
  scales, offsets and spike positions) is drawn through Hypothesis, a handful
  of choices per example, so it shrinks well: towards small shapes, no special
  rows, simple kinds, zero amplitudes and offsets;
* the *bulk* of the values is uniform noise from a numpy generator seeded by a
  single Hypothesis draw, so it is reproducible and replayable, and shrinks
  away wherever the amplitude that multiplies it shrinks to zero.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache
from typing import Any, NamedTuple

import numpy as np
from hypothesis import strategies as st
from numpy.typing import NDArray

__all__ = ["Noise", "draw_noise", "finalize", "floats_between", "indices", "special_rows"]

_SEEDS = st.integers(min_value=0, max_value=2**32 - 1)
# Another special row follows unless this draws 0: on average three special
# rows per example, and shrinking to 0 removes them.
_ANOTHER = st.integers(min_value=0, max_value=3)


class Noise(NamedTuple):
    """Per-example noise: two independent uniform arrays and a row order."""

    u: NDArray[np.float64]
    v: NDArray[np.float64]
    order: NDArray[np.intp]


# Strategies whose bounds depend on a drawn size or bound are cached: a strategy built
# inside a draw is validated again at every draw, which costs more than the draw.
@lru_cache(maxsize=4096)
def indices(n: int) -> st.SearchStrategy[int]:
    """``integers(0, n - 1)``: an index into ``n`` entries (n >= 1), built once per n."""
    return st.integers(0, n - 1)


@lru_cache(maxsize=1024)
def floats_between(low: float, high: float) -> st.SearchStrategy[float]:
    """``floats(low, high)``, built once per pair of bounds."""
    return st.floats(low, high)


def draw_noise(draw: st.DrawFn, shape: tuple[int, int]) -> Noise:
    """Draw one seed and derive from it all the noise an example needs.

    ``u`` and ``v`` are uniform in [-1, 1). They are produced up front, so row
    ``i`` sees the same noise whatever happens to other rows, and a change in
    one row's structure while shrinking does not perturb the others.
    """
    rng = np.random.default_rng(draw(_SEEDS))
    u = rng.uniform(-1.0, 1.0, size=shape)
    v = rng.uniform(-1.0, 1.0, size=shape)
    return Noise(u, v, rng.permutation(shape[0]))


def special_rows(draw: st.DrawFn, order: NDArray[np.intp]) -> Iterator[int]:
    """Yield distinct rows, in ``order``, for as long as a drawn integer is nonzero.

    Callers replace each yielded row of a plain background with a row of a
    drawn kind. Deciding row by row costs one choice per special row rather
    than several per row of the array.
    """
    for row in order:
        if draw(_ANOTHER) == 0:
            return
        yield int(row)


def finalize(
    values: NDArray[np.float64], dtype: np.dtype[np.floating[Any]], bound: float
) -> NDArray[np.floating[Any]]:
    """Clip float64 ``values`` to ``[-bound, bound]`` and return an owned C-contiguous copy.

    ``bound`` must be representable in ``dtype`` (see ``largest_at_most``), so
    the cast can neither overflow to inf nor round an entry past the bound.
    """
    clipped = np.clip(values, -bound, bound)
    return np.ascontiguousarray(clipped.astype(dtype, copy=True))
