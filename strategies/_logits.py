"""Logit arrays: adversarial ones for forward checks, well-conditioned ones for gradients.

Both strategies draw a shape and a plain background (noise times a drawn
amplitude), then replace a few rows (three on average) with rows of a drawn
*kind*, built from the kind's drawn parameters and the row's noise (see
``strategies._noise``). Kinds are listed simplest first, so rows shrink
towards the first kind; a kind listed twice is drawn twice as often.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import numpy as np
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument
from hypothesis.strategies import SearchStrategy
from numpy.typing import DTypeLike, NDArray

from softmax_verify.core.dtypes import finfo

from ._noise import draw_noise, finalize, indices, special_rows
from ._shapes import resolve_shape
from ._validation import check_dtype, check_magnitude, largest_at_most

__all__ = ["logits", "well_conditioned_logits"]

Row = NDArray[np.float64]

_LEVELS = st.integers(1, 4)
_GAP = st.floats(30.0, 1000.0)
_FRACTION = st.floats(0.0, 1.0)
# Decimal exponents of the tiny kind: from the smallest that still gives nonzero
# (subnormal) values up to 1e-30, or for float16 (whose normal range ends near 6e-5) 1e-5.
_TINY_EXPONENT = {
    "float32": (-44, -30),
    "float64": (-320, -30),
    "float16": (-7, -5),
    "bfloat16": (-40, -30),
}


class _Params:
    """The bound and the parameter strategies of ``logits`` rows, built once per call."""

    def __init__(self, bound: float, dtype: np.dtype[np.floating[Any]]) -> None:
        self.bound = bound  # largest allowed |x|, representable in dtype
        self.moderate = st.floats(0.0, min(10.0, bound))
        self.half_moderate = st.floats(0.0, min(5.0, bound))
        self.step = st.floats(0.0, min(10.0, bound) / 4.0)
        self.value = st.floats(-bound, bound)
        # Offsets from 1 to 1e12 (log-uniform), within bound / 2; far larger
        # magnitudes come from the constant and huge kinds.
        top = min(math.log10(bound) - math.log10(2.0), 12.0)
        self.offset_exponent = st.floats(min(0.0, top), top)
        self.offset_spread = st.floats(0.0, min(10.0, bound / 2.0))
        self.tiny_exponent = st.integers(*_TINY_EXPONENT[dtype.name])


# A row builder takes the draw function, the row's two noise rows and the
# parameters, and returns the row in float64 (clipped and cast later).
def _moderate(draw: st.DrawFn, u: Row, v: Row, p: _Params) -> Row:
    """Plain random values with |x| <= 10 (the background is of this kind too)."""
    return draw(p.moderate) * u


def _ties(draw: st.DrawFn, u: Row, v: Row, p: _Params) -> Row:
    """Values on a grid of at most 9 levels, so entries (often the maximum) repeat exactly."""
    return np.round(u * draw(_LEVELS)) * draw(p.step)


def _constant(draw: st.DrawFn, u: Row, v: Row, p: _Params) -> Row:
    """One value repeated: softmax must be exactly uniform, at any magnitude."""
    return np.full_like(u, draw(p.value))


def _dominant(draw: st.DrawFn, u: Row, v: Row, p: _Params) -> Row:
    """Moderate values plus one entry 30 to 1000 above all others (their weights ~1e-13 or 0)."""
    row = draw(p.half_moderate) * u
    spike = draw(indices(row.size))
    row[spike] = row.max() + draw(_GAP)
    return row


def _masked(draw: st.DrawFn, u: Row, v: Row, p: _Params) -> Row:
    """Moderate values with a drawn fraction of entries at -bound (attention-style masking)."""
    row = draw(p.half_moderate) * u
    row[v < 2.0 * draw(_FRACTION) - 1.0] = -p.bound
    return row


def _far(draw: st.DrawFn, u: Row, v: Row, p: _Params) -> Row:
    """Moderate values around an offset of log-uniform size, so row maxima differ hugely."""
    magnitude = min(math.pow(10.0, draw(p.offset_exponent)), p.bound / 2.0)
    offset = -magnitude if draw(st.booleans()) else magnitude
    return offset + draw(p.offset_spread) * u


def _huge(draw: st.DrawFn, u: Row, v: Row, p: _Params) -> Row:
    """Uniform in [-bound, bound]: about half the entries have |x| >= bound / 2."""
    return p.bound * u


def _tiny(draw: st.DrawFn, u: Row, v: Row, p: _Params) -> Row:
    """Magnitudes <= 1e-30, down into the subnormal range of the dtype (some become 0)."""
    return 10.0 ** draw(p.tiny_exponent) * u


_LOGIT_KINDS = st.sampled_from(
    (_moderate, _ties, _ties, _constant, _dominant, _masked, _far, _far, _huge, _tiny)
)


@st.composite
def _logits(
    draw: st.DrawFn,
    dtype: np.dtype[np.floating[Any]],
    shape: SearchStrategy[tuple[int, int]],
    params: _Params,
) -> NDArray[np.floating[Any]]:
    n_rows, n_cols = draw(shape)
    u, v, order = draw_noise(draw, (n_rows, n_cols))
    values = draw(params.moderate) * u
    for i in special_rows(draw, order):
        values[i] = draw(_LOGIT_KINDS)(draw, u[i], v[i], params)
    return finalize(values, dtype, params.bound)


def logits(
    dtype: DTypeLike = np.float64,
    *,
    shape: tuple[int, int] | SearchStrategy[tuple[int, int]] | None = None,
    max_magnitude: float | None = None,
) -> SearchStrategy[NDArray[np.floating[Any]]]:
    """Generate finite 2-D logit arrays meant to break softmax forward implementations.

    ``shape`` is a fixed ``(n_rows, n_cols)``, a strategy of shapes, or None
    for ``shapes()``. Every entry satisfies ``|x| <= max_magnitude`` (default:
    the largest finite value of ``dtype``). The array has exactly ``dtype``,
    is C-contiguous and owns its data.

    Rows are plain moderate values (``|x| <= 10``), except for a few (three on
    average) of these kinds: moderate values with their own amplitude; values
    on a coarse grid, so exact ties, often at the row maximum; a constant row
    of any magnitude; one entry dominating the rest by 30 to 1000; some
    entries masked to ``-max_magnitude``; moderate values around a positive
    or negative offset from 1 to 1e12 (log-uniform), so row maxima differ by
    orders of magnitude (this breaks subtracting a global instead of a
    per-row max); values spread up to ``max_magnitude``, where a naive
    ``exp`` overflows; magnitudes of 1e-30 and below, into the subnormals of
    ``dtype``.
    Offsets and spikes are clipped to ``max_magnitude``, so when it is small
    the extreme kinds degrade gracefully. Examples shrink towards a small
    shape of plain moderate rows, and then towards zeros.
    """
    resolved = check_dtype(dtype)
    shape_strategy = resolve_shape(shape)
    if max_magnitude is None:
        bound = float(finfo(resolved).max)
    else:
        magnitude = check_magnitude(max_magnitude, "max_magnitude")
        bound = largest_at_most(magnitude, resolved, "max_magnitude")
    return _logits(resolved, shape_strategy, _params(bound, resolved))


@lru_cache(maxsize=256)
def _params(bound: float, dtype: np.dtype[np.floating[Any]]) -> _Params:
    return _Params(bound, dtype)


# Well-conditioned rows lie around a drawn centre c with half-width
# h = spread / 2: every entry is in [c - h, c + h] and |c| + h <= max_abs.
# Builders return the row relative to its centre.
_WC_LEVELS = st.integers(1, 3)


def _wc_spread(draw: st.DrawFn, u: Row, half: float) -> Row:
    return draw(_FRACTION) * half * u


def _wc_ties(draw: st.DrawFn, u: Row, half: float) -> Row:
    levels = draw(_WC_LEVELS)
    return np.round(u * levels) * (half / levels)


def _wc_constant(draw: st.DrawFn, u: Row, half: float) -> Row:
    return np.zeros_like(u)


def _wc_spike(draw: st.DrawFn, u: Row, half: float) -> Row:
    row = (0.5 * u - 0.5) * half
    row[draw(indices(row.size))] = half
    return row


_WC_KINDS: SearchStrategy[Callable[[st.DrawFn, Row, float], Row]] = st.sampled_from(
    (_wc_spread, _wc_ties, _wc_constant, _wc_spike)
)


@st.composite
def _well_conditioned(
    draw: st.DrawFn,
    dtype: np.dtype[np.floating[Any]],
    shape: SearchStrategy[tuple[int, int]],
    spread: float,
    bound: float,
) -> NDArray[np.floating[Any]]:
    n_rows, n_cols = draw(shape)
    u, _, order = draw_noise(draw, (n_rows, n_cols))
    half = spread / 2.0
    centre_limit = max(bound - half, 0.0)
    centres = st.floats(-centre_limit, centre_limit)
    values = draw(centres) + _wc_spread(draw, u, half)
    for i in special_rows(draw, order):
        values[i] = draw(centres) + draw(_WC_KINDS)(draw, u[i], half)
    return _enforce_spread(finalize(values, dtype, bound), spread, bound)


def _enforce_spread(
    x: NDArray[np.floating[Any]], spread: float, bound: float
) -> NDArray[np.floating[Any]]:
    """Pull each row's top down so ``max - min <= spread`` holds exactly after rounding.

    Rounding ``c + h * u``, or to float32, can widen a row by an ulp; the
    clip below only ever touches such boundary entries. Differences are
    judged in float64, where ``a - b`` rounds monotonically, so a check of
    ``x.max(axis=1) - x.min(axis=1) <= spread`` in float64 always passes.
    """
    low = x.min(axis=1, keepdims=True)
    low64 = low.astype(np.float64)
    # min(low + spread, bound), computed without overflowing near the float64 maximum.
    high = (np.minimum(low64, bound - spread) + spread).astype(x.dtype)
    too_wide = high.astype(np.float64) - low64 > spread
    high = np.where(too_wide, np.nextafter(high, low), high)
    return np.ascontiguousarray(np.minimum(x, high))


def well_conditioned_logits(
    dtype: DTypeLike = np.float64,
    *,
    shape: tuple[int, int] | SearchStrategy[tuple[int, int]] | None = None,
    spread: float = 12.0,
    max_abs: float = 32.0,
) -> SearchStrategy[NDArray[np.floating[Any]]]:
    """Generate logits on which finite differences of softmax are accurate.

    Every row has ``max - min <= spread`` (so no probability is below
    ``exp(-spread)`` times the largest and the Jacobian is not saturated) and
    every entry has ``|x| <= max_abs`` (so ``x +/- h`` is representable with a
    small relative step). Rows lie around a drawn centre and are spread
    randomly; a few rows (three on average) get their own centre and are
    spread randomly, on a coarse grid (exact ties), constant, or with one
    entry at the top of the range and the rest in its lower half. ``shape``
    and the array guarantees are as for ``logits``.
    """
    resolved = check_dtype(dtype)
    shape_strategy = resolve_shape(shape)
    spread = check_magnitude(spread, "spread")
    max_abs = check_magnitude(max_abs, "max_abs")
    if spread > 2.0 * max_abs:
        raise InvalidArgument(
            f"spread={spread!r} must be at most 2 * max_abs = {2.0 * max_abs!r}, "
            "since every entry lies in [-max_abs, max_abs]"
        )
    bound = largest_at_most(max_abs, resolved, "max_abs")
    return _well_conditioned(resolved, shape_strategy, spread, bound)
