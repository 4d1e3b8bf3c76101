"""Logits with masked entries: ``-inf`` at drawn positions, as attention masks make them.

Each row is moderate noise around a drawn offset (0 or up to 1e6 either way, so a
"mask value" like -1e4 is not far below the row), with its own kind of mask:
none, a drawn fraction of the entries, all but one entry, or every entry (a fully
masked row). Rows shrink towards no mask, offset 0 and small noise.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy
from numpy.typing import DTypeLike, NDArray

from ._noise import draw_noise, indices
from ._shapes import resolve_shape
from ._validation import check_dtype

__all__ = ["masked_logits"]

_MASKS = st.sampled_from(("none", "fraction", "all_but_one", "all"))
_PARTIAL_MASKS = st.sampled_from(("none", "fraction", "all_but_one"))
_SIGNS = st.sampled_from((0, -1, 1))
_OFFSET_EXPONENT = st.floats(0.0, 6.0)
_SPREAD = st.floats(0.0, 30.0)
_FRACTION = st.floats(0.0, 1.0)
#: At most this many rows' offsets and masks are drawn; the rows after them take those of
#: the drawn rows in turn, with noise of their own. A drawn example holds at most 8 KiB of
#: Hypothesis choices, and a row's are up to 30 bytes (two floats at 9 each): one set a
#: row for every row would leave no batch of a few hundred rows drawable.
DRAWN_ROWS = 64


@st.composite
def _masked_logits(
    draw: st.DrawFn,
    dtype: np.dtype[np.floating[Any]],
    shape: SearchStrategy[tuple[int, int]],
    fully_masked: bool,
) -> NDArray[np.floating[Any]]:
    n_rows, n_cols = draw(shape)
    u, v, _order = draw_noise(draw, (n_rows, n_cols))
    values = np.empty((n_rows, n_cols))
    masks = _MASKS if fully_masked else _PARTIAL_MASKS
    for first in range(min(n_rows, DRAWN_ROWS)):
        sign = draw(_SIGNS, label="offset sign")
        offset = sign * 10.0 ** draw(_OFFSET_EXPONENT) if sign else 0.0
        spread = draw(_SPREAD)
        mask = draw(masks, label="mask")
        fraction = draw(_FRACTION) if mask == "fraction" else 0.0
        keep = draw(indices(n_cols)) if mask == "all_but_one" else 0
        for r in range(first, n_rows, DRAWN_ROWS):
            values[r] = offset + spread * u[r]
            if mask == "fraction":
                values[r, v[r] < 2.0 * fraction - 1.0] = -np.inf
            elif mask == "all_but_one":
                values[r, np.arange(n_cols) != keep] = -np.inf
            elif mask == "all":
                values[r] = -np.inf
    return np.ascontiguousarray(values.astype(dtype))


def masked_logits(
    dtype: DTypeLike = np.float64,
    *,
    shape: tuple[int, int] | SearchStrategy[tuple[int, int]] | None = None,
    fully_masked: bool = True,
) -> SearchStrategy[NDArray[np.floating[Any]]]:
    """Generate 2-D logits whose rows have ``-inf`` (masked) entries at drawn positions.

    Per row (the first ``DRAWN_ROWS``; the rows after them repeat those rows' offsets and
    masks in turn, with noise of their own): a mask of no entries, a drawn fraction, all
    entries but one, or (when ``fully_masked``) every entry; the unmasked values are noise
    of spread up to 30 around an offset of 0 or of magnitude 1 to 1e6 (log-uniform), so a
    mask value that is merely very negative (-1e4) is not negligible against them. Finite
    entries stay within ``|x| <= 1e6 + 30``; the array has exactly ``dtype``, is
    C-contiguous and owns its data.
    """
    resolved = check_dtype(dtype)
    if not isinstance(fully_masked, bool):
        raise TypeError(f"fully_masked must be a bool, got {fully_masked!r}")
    return _masked_logits(resolved, resolve_shape(shape), fully_masked)
