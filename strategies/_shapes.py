"""Shapes of 2-D logit arrays: ``(n_rows, n_cols)``, softmax along axis 1."""

from __future__ import annotations

from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument
from hypothesis.strategies import SearchStrategy

from ._validation import check_int, check_shape

__all__ = ["resolve_shape", "shapes"]

# One draw in four makes the shape square when the bounds allow it: with
# n_rows == n_cols a reduction along the wrong axis, or a missing keepdims,
# broadcasts silently instead of raising, so squares deserve extra weight.
_SQUARE = st.sampled_from((False, False, False, True))


def _sizes(low: int, high: int) -> SearchStrategy[int]:
    """Integers in [low, high] that hit ``high`` about one time in eight.

    Plain ``integers(1, 64)`` returns 64 only about once in a hundred draws;
    widening the range by an eighth and clamping puts more weight on the
    largest size, where vectorized code takes its full-width paths. The
    minimum is unaffected, and shrinking still goes towards ``low``.
    """
    extra = (high - low) // 7
    return st.integers(low, high + extra).map(lambda n: min(n, high))


@st.composite
def _shapes(
    draw: st.DrawFn,
    rows: SearchStrategy[int],
    cols: SearchStrategy[int],
    min_cols: int,
    max_cols: int,
) -> tuple[int, int]:
    n_rows = draw(rows)
    if min_cols <= n_rows <= max_cols and draw(_SQUARE):
        return (n_rows, n_rows)
    return (n_rows, draw(cols))


def shapes(
    *, min_rows: int = 1, max_rows: int = 24, min_cols: int = 1, max_cols: int = 64
) -> SearchStrategy[tuple[int, int]]:
    """Generate ``(n_rows, n_cols)`` shapes with each side inside its bounds.

    The defaults (1..24 rows, 1..64 columns) are small enough for fast tests
    and large enough to cover a single row, a single column, square shapes,
    column counts that are not a multiple of a SIMD width (8) and the largest
    column count. The largest row and column counts come up about one time
    in eight each, and one shape in four is square when the bounds allow:
    square shapes hide broadcasting mistakes (``x - x.max(axis=1)`` without
    ``keepdims`` runs on a square array and gives wrong values). Shapes
    shrink towards ``(min_rows, min_cols)``.
    """
    min_rows = check_int(min_rows, "min_rows", min_value=1)
    max_rows = check_int(max_rows, "max_rows", min_value=1)
    min_cols = check_int(min_cols, "min_cols", min_value=1)
    max_cols = check_int(max_cols, "max_cols", min_value=1)
    if min_rows > max_rows:
        raise InvalidArgument(f"min_rows={min_rows} must be at most max_rows={max_rows}")
    if min_cols > max_cols:
        raise InvalidArgument(f"min_cols={min_cols} must be at most max_cols={max_cols}")
    return _shapes(_sizes(min_rows, max_rows), _sizes(min_cols, max_cols), min_cols, max_cols)


@st.composite
def _validated(draw: st.DrawFn, strategy: SearchStrategy[tuple[int, int]]) -> tuple[int, int]:
    drawn = draw(strategy)
    try:
        return check_shape(drawn, "shape")
    except (TypeError, InvalidArgument) as exc:
        raise InvalidArgument(
            f"the shape strategy {strategy!r} produced an invalid shape: {exc}"
        ) from None


def resolve_shape(
    shape: tuple[int, int] | SearchStrategy[tuple[int, int]] | None,
) -> SearchStrategy[tuple[int, int]]:
    """Turn the ``shape`` argument of the array strategies into a strategy of shapes.

    ``None`` means ``shapes()``; a tuple is validated now and used as is; a
    strategy is used as given, and each shape it produces is validated when
    drawn (a strategy's values cannot be checked in advance).
    """
    if shape is None:
        return shapes()
    if isinstance(shape, SearchStrategy):
        return _validated(shape)
    return st.just(check_shape(shape, "shape"))
