"""Shapes of 2-D logit arrays: ``(n_rows, n_cols)``, softmax along axis 1."""

from __future__ import annotations

from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument
from hypothesis.strategies import SearchStrategy

from ._validation import check_int, check_shape

__all__ = ["BOUNDARY_COLS", "LONG_MAX_COLS", "kernel_shapes", "resolve_shape", "shapes"]

#: The longest rows ``kernel_shapes`` draws by default: a vocabulary-sized block.
LONG_MAX_COLS = 8192
#: Row lengths where blocked kernels break: powers of two from 64 and their neighbours.
BOUNDARY_COLS: tuple[int, ...] = tuple(
    sorted({2**k + step for k in range(6, 14) for step in (-1, 0, 1)})
)
#: Long examples have at most this many entries (or ``min_rows`` rows, if more): rows
#: are independent, so a few rows of a long length test it as well as many.
_LONG_ENTRIES = 1 << 15

# One draw in four makes the shape square when the bounds allow it, and one example in
# six is a long row when the domain allows both kinds. Every choice is drawn on every
# example, whichever branch it picks: Hypothesis orders examples by their choice
# sequences, shorter first, so a branch that draws less (a square, a long row) would be
# a local minimum the shrinker cannot leave, e.g. (3, 3) or (1, 65) for any failure.
_SQUARE = st.sampled_from((False, False, False, True))
_LONG = st.sampled_from((False, False, False, False, False, True))


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
    square_sides: tuple[int, int, int] | None,
) -> tuple[int, int]:
    """``(rows, cols)``, or ``(rows, rows)`` one time in four when rows is a valid side:
    in ``[low, high]`` and a multiple of ``multiple`` (``square_sides``)."""
    n_rows, n_cols, square = draw(rows), draw(cols), draw(_SQUARE)
    if square and square_sides is not None:
        low, high, multiple = square_sides
        if low <= n_rows <= high and n_rows % multiple == 0:
            return (n_rows, n_rows)
    return (n_rows, n_cols)


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
    return _shapes(_sizes(min_rows, max_rows), _sizes(min_cols, max_cols), (min_cols, max_cols, 1))


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


def _snap(n: int, multiple: int, low: int, high: int) -> int:
    """The multiple of ``multiple`` nearest ``n`` inside [low, high] (one exists)."""
    first = -(-low // multiple) * multiple
    last = high // multiple * multiple
    return min(max(round(n / multiple) * multiple, first), last)


def _long_cols(low: int, high: int) -> SearchStrategy[int]:
    """Lengths in [low, high], mostly at block boundaries, else arbitrary (high in 8)."""
    boundary = [c for c in BOUNDARY_COLS if low <= c <= high]
    arbitrary = _sizes(low, high)
    if not boundary:
        return arbitrary
    # Boundary lengths three times in four; shrinking goes to the shortest of them.
    return st.one_of(st.sampled_from(boundary), st.sampled_from(boundary), arbitrary)


class _KernelShapes:
    """The strategies ``kernel_shapes`` draws from, built once per call: a strategy
    built inside a draw is validated again at every draw, which costs more than the
    draw itself."""

    def __init__(self, rows: tuple[int, int], cols: tuple[int, int], multiple: int) -> None:
        small = 64
        self.rows, self.cols, self.multiple = rows, cols, multiple
        low, high = cols
        self.can_small = _snap(low, multiple, low, high) <= small
        self.can_long = high > small
        small_top = max(low, min(high, small))
        self.small = _shapes(
            _sizes(rows[0], max(rows[0], min(rows[1], 24))),
            _sizes(low, small_top).map(lambda n: _snap(n, multiple, low, high)),
            (low, small_top, multiple),
        )
        self.long_cols = _long_cols(max(low, small + 1), high) if self.can_long else st.just(high)
        # A fraction of the rows the entry budget leaves: shrinks to min_rows.
        self.long_rows = st.integers(0, 255)


@st.composite
def _kernel_shapes(draw: st.DrawFn, k: _KernelShapes) -> tuple[int, int]:
    low, high = k.cols
    # Both kinds are drawn on every example (see _SQUARE): the flag only picks one.
    short, long = draw(k.small), draw(_LONG)
    n_cols, fraction = _snap(draw(k.long_cols), k.multiple, low, high), draw(k.long_rows)
    if k.can_small and not (k.can_long and long):
        return short
    most = max(k.rows[0], min(k.rows[1], _LONG_ENTRIES // n_cols))
    # Cubed: mostly a few rows (rows are independent), now and then the whole budget.
    return (k.rows[0] + fraction**3 * (most - k.rows[0]) // 255**3, n_cols)


def kernel_shapes(
    *,
    min_rows: int = 1,
    max_rows: int | None = None,
    min_cols: int = 1,
    max_cols: int = LONG_MAX_COLS,
    cols_multiple_of: int = 1,
) -> SearchStrategy[tuple[int, int]]:
    """Shapes a softmax kernel meets: short rows as ``shapes()``, and long rows.

    Five examples in six are drawn as ``shapes()`` draws them (up to 24 rows and 64
    columns, squares weighted, so ``D % 8 != 0`` and ``N == D`` come up); one in six
    is a long row of 65 to ``max_cols`` columns: three times in four a length in
    ``BOUNDARY_COLS`` (127, 128, 129, 255, ..., 8191, 8192), where a kernel's column
    blocks end, else an arbitrary length (``max_cols`` one time in eight). Long
    examples have at most ``2**15`` entries (few rows) unless ``min_rows`` asks for
    more. With ``cols_multiple_of=K`` every column count is a multiple of K (the
    nearest one inside the bounds). ``max_rows`` (default: no limit beyond those)
    bounds the rows. Shapes shrink towards ``(min_rows, min_cols)``, short first.
    """
    min_rows = check_int(min_rows, "min_rows", min_value=1)
    min_cols = check_int(min_cols, "min_cols", min_value=1)
    max_cols = check_int(max_cols, "max_cols", min_value=1)
    multiple = check_int(cols_multiple_of, "cols_multiple_of", min_value=1)
    if max_rows is None:
        top_rows = max(min_rows, 1 << 20)  # in effect unbounded: the entry budget decides
    else:
        top_rows = check_int(max_rows, "max_rows", min_value=1)
    if min_rows > top_rows:
        raise InvalidArgument(f"min_rows={min_rows} must be at most max_rows={max_rows}")
    if min_cols > max_cols:
        raise InvalidArgument(f"min_cols={min_cols} must be at most max_cols={max_cols}")
    if -(-min_cols // multiple) * multiple > max_cols:
        raise InvalidArgument(
            f"cols_multiple_of={multiple} has no multiple between min_cols={min_cols} "
            f"and max_cols={max_cols}"
        )
    return _kernel_shapes(_KernelShapes((min_rows, top_rows), (min_cols, max_cols), multiple))
