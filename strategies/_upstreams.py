"""Auxiliary inputs of softmax checks: upstream gradients, directions, shifts, permutations."""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from hypothesis.strategies import SearchStrategy
from numpy.typing import DTypeLike, NDArray

from ._noise import draw_noise, finalize, floats_between, indices, special_rows
from ._validation import (
    HALF_DTYPES,
    check_dtype,
    check_int,
    check_magnitude,
    check_shape,
    largest_at_most,
)

__all__ = ["directions", "permutations", "shifts", "upstreams"]

Row = NDArray[np.float64]


# Upstream rows that replace rows of the random background; each takes the
# draw function, the row's noise and the bound.
def _up_zeros(draw: st.DrawFn, u: Row, bound: float) -> Row:
    return np.zeros_like(u)


def _up_one_hot(draw: st.DrawFn, u: Row, bound: float) -> Row:
    row = np.zeros_like(u)
    row[draw(indices(row.size))] = min(1.0, bound)
    return row


def _up_constant(draw: st.DrawFn, u: Row, bound: float) -> Row:
    return np.full_like(u, draw(floats_between(-bound, bound)))


def _up_scaled(draw: st.DrawFn, u: Row, bound: float) -> Row:
    return draw(floats_between(0.0, bound)) * u


_UPSTREAM_ROW_KINDS: SearchStrategy[Callable[[st.DrawFn, Row, float], Row]] = st.sampled_from(
    (_up_zeros, _up_one_hot, _up_constant, _up_scaled, _up_scaled)
)
# Whole-array layouts, simplest first: all ones; random rows (weighted 4); c * ones.
_UPSTREAM_LAYOUTS = st.sampled_from(("ones", "rows", "rows", "rows", "rows", "constant"))


@st.composite
def _upstreams(
    draw: st.DrawFn, shape: tuple[int, int], dtype: np.dtype[np.floating[Any]], bound: float
) -> NDArray[np.floating[Any]]:
    layout = draw(_UPSTREAM_LAYOUTS)
    if layout == "ones":
        values = np.full(shape, min(1.0, bound))
    elif layout == "constant":
        values = np.full(shape, draw(floats_between(-bound, bound)))
    else:
        u, _, order = draw_noise(draw, shape)
        values = min(1.0, bound) * u
        for i in special_rows(draw, order):
            values[i] = draw(_UPSTREAM_ROW_KINDS)(draw, u[i], bound)
    return finalize(values, dtype, bound)


def upstreams(
    shape: tuple[int, int], dtype: DTypeLike = np.float64, *, max_magnitude: float = 1e3
) -> SearchStrategy[NDArray[np.floating[Any]]]:
    """Generate upstream gradients ``dout`` of ``shape`` for a softmax backward.

    Entries are finite with ``|dout| <= max_magnitude``; the array has exactly
    ``dtype``, is C-contiguous and owns its data. One example in six is all
    ones (``dx`` must vanish: each softmax row sums to a constant) and one in
    six is a constant ``c * ones`` (same, scaled). The others are random O(1)
    values in which a few rows are replaced by zeros, a one-hot basis vector
    (picks one row of the Jacobian), a constant, or random values scaled up
    to ``max_magnitude``. Where ``max_magnitude < 1``, the "one" of the ones
    and one-hot rows is ``max_magnitude``. Shrinks towards all ones.
    """
    shape = check_shape(shape)
    resolved = check_dtype(dtype)
    magnitude = check_magnitude(max_magnitude, "max_magnitude")
    return _built_upstreams(shape, resolved, largest_at_most(magnitude, resolved, "max_magnitude"))


# The case strategies ask for upstreams of the shape of each drawn ``x``: the same few
# hundred (shape, dtype, bound) come back, and a cached strategy is validated only once.
@lru_cache(maxsize=1024)
def _built_upstreams(
    shape: tuple[int, int], dtype: np.dtype[np.floating[Any]], bound: float
) -> SearchStrategy[NDArray[np.floating[Any]]]:
    return _upstreams(shape, dtype, bound)


_DIRECTION_LAYOUTS = st.sampled_from(("uniform", "uniform", "signs", "basis"))


@st.composite
def _directions(
    draw: st.DrawFn, shape: tuple[int, int], dtype: np.dtype[np.floating[Any]]
) -> NDArray[np.floating[Any]]:
    layout = draw(_DIRECTION_LAYOUTS)
    u, v, _ = draw_noise(draw, shape)
    signs = np.where(v < 0.0, -1.0, 1.0)
    rows = np.arange(shape[0])
    if layout == "uniform":
        values = u.copy()
        peak = np.argmax(np.abs(u), axis=1)
        values[rows, peak] = np.copysign(np.maximum(np.abs(u[rows, peak]), 0.5), u[rows, peak])
    elif layout == "signs":
        values = signs
    else:
        values = np.zeros(shape)
        values[rows, np.argmax(u, axis=1)] = signs[:, 0]
    return finalize(values, dtype, 1.0)


def directions(
    shape: tuple[int, int], dtype: DTypeLike = np.float64
) -> SearchStrategy[NDArray[np.floating[Any]]]:
    """Generate perturbation directions ``v`` of ``shape`` for directional-derivative checks.

    Every entry is in [-1, 1] and every row has an entry with ``|v| >= 0.5``,
    so ``x + h * v`` moves every row by O(h) and the derivative along ``v`` is
    never trivially zero. Half the examples are uniform in [-1, 1] with each
    row's largest entry raised to magnitude >= 0.5; a quarter are random signs
    (+-1 everywhere); a quarter put one +-1 per row (a basis direction).
    """
    shape = check_shape(shape)
    return _directions(shape, check_dtype(dtype))


def shifts(
    n_rows: int, dtype: DTypeLike = np.float64, *, max_magnitude: float = 1e4
) -> SearchStrategy[NDArray[np.floating[Any]]]:
    """Generate an ``(n_rows, 1)`` array of per-row additive shifts ``c``.

    Softmax is invariant under ``x + c`` for any per-row ``c``; the shifts
    are finite with ``|c| <= max_magnitude`` and cover zero, integers,
    fractions, both signs and values near ``max_magnitude`` (each row is one
    Hypothesis float draw, so bounds and special values come up often). The
    array has exactly ``dtype``, is C-contiguous and owns its data. Note that
    ``x + c`` is itself rounded, by up to ``eps * |c|``.
    """
    n_rows = check_int(n_rows, "n_rows", min_value=1)
    resolved = check_dtype(dtype)
    magnitude = check_magnitude(max_magnitude, "max_magnitude")
    return _built_shifts(n_rows, resolved, largest_at_most(magnitude, resolved, "max_magnitude"))


@lru_cache(maxsize=1024)
def _built_shifts(
    n_rows: int, resolved: np.dtype[np.floating[Any]], bound: float
) -> SearchStrategy[NDArray[np.floating[Any]]]:
    if resolved in HALF_DTYPES:
        # Drawn in float64 and rounded: bound is representable, so rounding stays within it.
        wide = hnp.arrays(np.float64, (n_rows, 1), elements=st.floats(-bound, bound))
        return wide.map(lambda c: np.ascontiguousarray(c.astype(resolved)))
    if resolved == np.dtype(np.float32):
        elements = st.floats(-bound, bound, width=32)
    else:
        elements = st.floats(-bound, bound)
    # Every row gets its own draw for up to 64 rows; beyond that Hypothesis
    # draws a subset and fills the rest with one repeated value.
    fill = st.nothing() if n_rows <= 64 else None
    return hnp.arrays(resolved, (n_rows, 1), elements=elements, fill=fill).map(_owned)


def _owned(x: NDArray[np.floating[Any]]) -> NDArray[np.floating[Any]]:
    return np.array(x, order="C", copy=True)


def _as_intp(values: list[int]) -> NDArray[np.intp]:
    return np.array(values, dtype=np.intp)


def permutations(n: int) -> SearchStrategy[NDArray[np.intp]]:
    """Generate a permutation of ``range(n)`` as a 1-D ``np.intp`` array.

    Used to permute the columns of a row (softmax must permute the same way)
    or the rows of an array. Shrinks towards the identity. Up to 64 entries
    Hypothesis draws every swap; beyond that (long rows, where n swaps would be
    thousands of choices per example) the permutation is the identity, the
    reversal, a rotation by a drawn amount, or a uniform shuffle from a drawn seed.
    """
    return _built_permutations(check_int(n, "n", min_value=1))


@lru_cache(maxsize=1024)
def _built_permutations(n: int) -> SearchStrategy[NDArray[np.intp]]:
    if n <= 64:
        return st.permutations(range(n)).map(_as_intp)
    return _long_permutation(n)


_LONG_PERMUTATIONS = st.sampled_from(("identity", "reverse", "rotate", "shuffle"))
_SEEDS = st.integers(0, 2**32 - 1)


@st.composite
def _long_permutation(draw: st.DrawFn, n: int) -> NDArray[np.intp]:
    kind = draw(_LONG_PERMUTATIONS)
    if kind == "identity":
        return np.arange(n, dtype=np.intp)
    if kind == "reverse":
        return np.arange(n - 1, -1, -1, dtype=np.intp)
    if kind == "rotate":
        return np.roll(np.arange(n, dtype=np.intp), 1 + draw(indices(n - 1)))
    rng = np.random.default_rng(draw(_SEEDS))
    return rng.permutation(n).astype(np.intp)
