"""Shapes of 2-D logit arrays: ``(n_rows, n_cols)``, softmax along axis 1."""

from __future__ import annotations

from bisect import bisect_left
from weakref import WeakSet

from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument
from hypothesis.strategies import SearchStrategy

from softmax_verify.core.domain import (
    LONG_MAX_COLS,
    RECURRING_ARBITRARY_COLS,
    RECURRING_SHORT_COLS,
    Domain,
)

from ._validation import check_int, check_shape

__all__ = [
    "BOUNDARY_COLS",
    "LONG_MAX_COLS",
    "RECURRING_ARBITRARY_COLS",
    "RECURRING_SHORT_COLS",
    "kernel_shapes",
    "largest_shape_in",
    "resolve_shape",
    "shapes",
    "shapes_in",
]

#: Row lengths where blocked kernels break: powers of two from 64 and their neighbours.
BOUNDARY_COLS: tuple[int, ...] = tuple(
    sorted({2**k + step for k in range(6, 14) for step in (-1, 0, 1)})
)
#: Long examples have at most this many entries (or ``min_rows`` rows, if more): rows
#: are independent, so a few rows of a long length test it as well as many.
_LONG_ENTRIES = 1 << 15

# One draw in four makes the shape square when the bounds allow it, and one example in
# four is a long row when the domain allows both kinds (one in six let a tail bug of
# 1024-column blocks through a ci verdict at one dtype about one run in five). Every
# choice is drawn on every example, whichever branch it picks: Hypothesis orders
# examples by their choice sequences, shorter first, so a branch that draws less (a
# square, a long row) would be a local minimum the shrinker cannot leave, e.g. (3, 3) or
# (1, 65) for any failure.
_SQUARE = st.sampled_from((False, False, False, True))
_LONG = st.sampled_from((False, False, False, True))


# Shape strategies built by this module: their shapes are valid by construction, so
# ``resolve_shape`` does not wrap them in a check that would cost a span per example.
_VALID: WeakSet[SearchStrategy[tuple[int, int]]] = WeakSet()


def _trusted(strategy: SearchStrategy[tuple[int, int]]) -> SearchStrategy[tuple[int, int]]:
    _VALID.add(strategy)
    return strategy


def _sizes(low: int, high: int) -> SearchStrategy[int]:
    """Integers in [low, high] that hit ``high`` about one time in eight.

    Plain ``integers(1, 64)`` returns 64 only about once in a hundred draws;
    widening the range by an eighth and clamping puts more weight on the
    largest size, where vectorized code takes its full-width paths. The
    minimum is unaffected, and shrinking still goes towards ``low``.
    """
    return _widened(low, high).map(lambda n: min(n, high))


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
    return _trusted(
        _shapes(_sizes(min_rows, max_rows), _sizes(min_cols, max_cols), (min_cols, max_cols, 1))
    )


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
        return shape if shape in _VALID else _validated(shape)
    return st.just(check_shape(shape, "shape"))


def _snap(n: int, multiple: int, low: int, high: int) -> int:
    """The multiple of ``multiple`` nearest ``n`` inside [low, high] (one exists)."""
    first = -(-low // multiple) * multiple
    last = high // multiple * multiple
    return min(max(round(n / multiple) * multiple, first), last)


class _KernelShapes:
    """The bounds and the strategies ``kernel_shapes`` draws from, built once per call: a
    strategy built inside a draw is validated again at every draw, which costs more than
    the draw itself. Every draw is a plain integer, with no nested composite or map:
    each level costs as much as a draw, and shapes are drawn for every example."""

    def __init__(self, rows: tuple[int, int], cols: tuple[int, int], multiple: int) -> None:
        small = 64
        self.rows, self.cols, self.multiple = rows, cols, multiple
        low, high = cols
        self.can_small = _snap(low, multiple, low, high) <= small
        self.can_long = high > small
        self.short_rows = (rows[0], max(rows[0], min(rows[1], 24)))
        self.short_cols = (low, max(low, min(high, small)))
        # Sizes hit their top about one time in eight (see ``_sizes``): ranges widened
        # by an eighth, clamped after the draw.
        self.draw_short_rows = _widened(*self.short_rows)
        self.draw_short_cols = _widened(*self.short_cols)
        long_low = max(low, small + 1)
        self.boundary = [c for c in BOUNDARY_COLS if long_low <= c <= high] or [high]
        self.draw_boundary = st.integers(0, len(self.boundary) - 1)
        self.long_range = (long_low, high) if self.can_long else (high, high)
        self.draw_arbitrary = _widened(*self.long_range)
        # recurring_cols: the palettes short and arbitrary long lengths are mapped to
        self.short_palette = _palette(RECURRING_SHORT_COLS, self.short_cols, multiple, cols)
        self.arbitrary_palette = _palette(RECURRING_ARBITRARY_COLS, self.long_range, multiple, cols)
        self.kept = frozenset(_snap(c, multiple, low, high) for c in self.boundary)


def _palette(
    lengths: tuple[int, ...], within: tuple[int, int], multiple: int, cols: tuple[int, int]
) -> tuple[int, ...]:
    """The ``lengths`` inside ``within``, and its two ends, each snapped to a multiple of
    ``multiple`` inside ``cols`` (as drawn lengths are): never empty."""
    low, high = within
    inside = [n for n in (*lengths, low, high) if low <= n <= high]
    return tuple(sorted({_snap(n, multiple, *cols) for n in inside}))


def _nearest(n: int, palette: tuple[int, ...]) -> int:
    """The palette length nearest ``n`` (the shorter of two as near)."""
    i = bisect_left(palette, n)
    if i == len(palette):
        return palette[-1]
    if i > 0 and n - palette[i - 1] <= palette[i] - n:
        return palette[i - 1]
    return palette[i]


def _widened(low: int, high: int) -> SearchStrategy[int]:
    """``integers(low, high + (high - low) // 7)``: clamp the draw to ``high``."""
    return st.integers(low, high + (high - low) // 7)


# Long rows: a boundary length three times in four (shrinking goes to the shortest),
# else an arbitrary one. The row count of a long example is a fraction (in 255ths) of
# the rows the entry budget leaves: it shrinks to min_rows.
_ARBITRARY = st.integers(0, 3)
_FRACTION = st.integers(0, 255)


@st.composite
def _kernel_shapes(draw: st.DrawFn, k: _KernelShapes) -> tuple[int, int]:
    low, high = k.cols
    # Every choice is drawn on every example (see _SQUARE): the flags only pick.
    n_rows = min(draw(k.draw_short_rows), k.short_rows[1])
    n_cols = _snap(min(draw(k.draw_short_cols), k.short_cols[1]), k.multiple, low, high)
    square, long, pick = draw(_SQUARE), draw(_LONG), draw(_ARBITRARY)
    boundary = k.boundary[draw(k.draw_boundary)]
    arbitrary = min(draw(k.draw_arbitrary), k.long_range[1])
    fraction = draw(_FRACTION)
    if k.can_small and not (k.can_long and long):
        side_low, side_high = k.short_cols
        if square and side_low <= n_rows <= side_high and n_rows % k.multiple == 0:
            return (n_rows, n_rows)
        return (n_rows, n_cols)
    long_cols = _snap(arbitrary if pick == 3 else boundary, k.multiple, low, high)
    most = max(k.rows[0], min(k.rows[1], _LONG_ENTRIES // long_cols))
    # Cubed: mostly a few rows (rows are independent), now and then the whole budget.
    return (k.rows[0] + fraction**3 * (most - k.rows[0]) // 255**3, long_cols)


@st.composite
def _recurring_kernel_shapes(
    draw: st.DrawFn, plain: SearchStrategy[tuple[int, int]], k: _KernelShapes
) -> tuple[int, int]:
    """A shape of ``plain`` (``_kernel_shapes``, whose code is left as it is: Hypothesis
    labels a composite by its code, and a derandomized run's examples follow the labels)
    with its length mapped into the palette: a block boundary kept, a short length to
    the nearest short palette length (a square with a side outside it is no longer
    square), a long one to the nearest arbitrary palette length, within the entry budget.
    """
    n_rows, n_cols = draw(plain)
    if n_cols in k.kept:
        return (n_rows, n_cols)
    if n_cols <= k.short_cols[1]:
        return (n_rows, _nearest(n_cols, k.short_palette))
    n_cols = _nearest(n_cols, k.arbitrary_palette)
    return (min(n_rows, max(k.rows[0], _LONG_ENTRIES // n_cols)), n_cols)


def kernel_shapes(
    *,
    min_rows: int = 1,
    max_rows: int | None = None,
    min_cols: int = 1,
    max_cols: int = LONG_MAX_COLS,
    cols_multiple_of: int = 1,
    recurring_cols: bool = False,
) -> SearchStrategy[tuple[int, int]]:
    """Shapes a softmax kernel meets: short rows as ``shapes()``, and long rows.

    Three examples in four are drawn as ``shapes()`` draws them (up to 24 rows and 64
    columns, squares weighted, so ``D % 8 != 0`` and ``N == D`` come up); one in four
    is a long row of 65 to ``max_cols`` columns: three times in four a length in
    ``BOUNDARY_COLS`` (127, 128, 129, 255, ..., 8191, 8192), where a kernel's column
    blocks end, else an arbitrary length (``max_cols`` one time in eight). Long
    examples have at most ``2**15`` entries (few rows) unless ``min_rows`` asks for
    more. With ``cols_multiple_of=K`` every column count is a multiple of K (the
    nearest one inside the bounds). ``max_rows`` (default: no limit beyond those)
    bounds the rows. Shapes shrink towards ``(min_rows, min_cols)``, short first.

    ``recurring_cols=True`` draws the same few row lengths again and again, for code
    compiled once per shape (a jitted jax function): each drawn short or arbitrary long
    length is replaced by the nearest of a palette, ``RECURRING_SHORT_COLS`` (every
    remainder mod 8, alone and past a block of 8; 16, 32, 64) and
    ``RECURRING_ARBITRARY_COLS``, with the bounds' ends; the block boundaries are
    drawn as before, and squares only of a palette side. Its price: a bug at a short
    or arbitrary length outside the palette (a kernel wrong at D = 23 alone) is missed.
    """
    if not isinstance(recurring_cols, bool):
        raise TypeError(f"recurring_cols must be a bool, got recurring_cols={recurring_cols!r}")
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
    k = _KernelShapes((min_rows, top_rows), (min_cols, max_cols), multiple)
    plain = _kernel_shapes(k)
    return _trusted(_recurring_kernel_shapes(plain, k) if recurring_cols else plain)


def shapes_in(domain: Domain) -> SearchStrategy[tuple[int, int]]:
    """The shapes ``kernel_shapes`` draws inside ``domain`` (the shapes an implementation
    declares it supports, ``softmax_verify.Domain``)."""
    if not isinstance(domain, Domain):
        raise TypeError(f"domain must be a softmax_verify.Domain, got domain={domain!r}")
    min_rows, max_rows = domain.rows or (1, None)
    min_cols, max_cols = domain.cols or (1, max(LONG_MAX_COLS, domain.cols_multiple_of))
    return kernel_shapes(
        min_rows=min_rows,
        max_rows=max_rows,
        min_cols=min_cols,
        max_cols=max_cols,
        cols_multiple_of=domain.cols_multiple_of,
        recurring_cols=domain.recurring_cols,
    )


def largest_shape_in(domain: Domain) -> tuple[int, int]:
    """A shape with at least as many entries as any ``shapes_in(domain)`` draws: what the
    verifier must be able to hold (``softmax_verify.run.memory``).

    A short example has at most the short rows' top times the short columns' top (snapped
    to the multiple: a square's side is no more). A long one of ``c`` columns (at most C,
    the widest multiple inside the bounds) has ``max(r0, min(r1, 2**15 // c))`` rows, so
    ``c`` times that is at most ``max(r0 C, min(r1 C, 2**15))``: the shape returned for
    the long rows, ``(max(r0, min(r1, ceil(2**15 / C))), C)``, has at least as many. It is
    exact when the fewest rows decide (``r0 C > 2**15``, the declared shapes a machine may
    not hold) and for a single shape. ``recurring_cols`` maps lengths into the same bounds.
    """
    if not isinstance(domain, Domain):
        raise TypeError(f"domain must be a softmax_verify.Domain, got domain={domain!r}")
    min_rows, max_rows = domain.rows or (1, 1 << 20)
    low, high = domain.cols or (1, max(LONG_MAX_COLS, domain.cols_multiple_of))
    k = _KernelShapes((min_rows, max_rows), (low, high), domain.cols_multiple_of)
    shapes: list[tuple[int, int]] = []
    if k.can_small:
        shapes.append((k.short_rows[1], _snap(k.short_cols[1], k.multiple, low, high)))
    if k.can_long or not k.can_small:
        widest = high // k.multiple * k.multiple
        shapes.append((max(min_rows, min(max_rows, -(-_LONG_ENTRIES // widest))), widest))
    return max(shapes, key=lambda shape: shape[0] * shape[1])
