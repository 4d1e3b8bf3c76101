"""Meta-tests: the shapes the checks draw include long rows and block boundaries,
stay inside a declared domain, and still include the short-row edge cases."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import Phase, assume, find, given, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument
from hypothesis.strategies import SearchStrategy

import softmax_verify.strategies as sv_st
from softmax_verify.core.domain import Domain
from softmax_verify.invariants import get_invariant

_FIND = settings(max_examples=2000, phases=(Phase.generate,), database=None)


def _drawn(strategy: SearchStrategy[Any], n: int = 300) -> list[Any]:
    """What ``strategy`` draws under the ci profile's derandomized search, ``n`` examples."""
    seen: list[Any] = []

    @settings(max_examples=n, derandomize=True, database=None, deadline=None)
    @given(strategy)
    def collect(value: Any) -> None:
        seen.append(value)

    collect()
    return seen


def test_default_shapes_draw_long_rows_at_block_boundaries() -> None:
    cols = {c for _, c in _drawn(sv_st.kernel_shapes(), n=1000)}
    # Past a block of 128 but not a multiple (a D // 128 tail bug shows), likewise 1024.
    assert any(c > 128 and c % 128 for c in cols)
    assert any(c > 1024 and c % 1024 for c in cols)
    boundary = cols & set(sv_st.BOUNDARY_COLS)
    assert {127, 128, 129} & boundary
    assert len(boundary) >= 10, sorted(boundary)
    assert any(c not in sv_st.BOUNDARY_COLS and c > 64 for c in cols)  # arbitrary lengths


def test_the_longest_rows_are_drawn() -> None:
    # max_cols is one long arbitrary draw in eight (clamped to the top): a derandomized
    # sample of fixed size is no measure of that rate, as Hypothesis also draws the
    # integer constants it finds in the package's code, so any new constant moves it.
    assert find(sv_st.kernel_shapes(), lambda s: s[1] == sv_st.LONG_MAX_COLS, settings=_FIND)


def test_default_shapes_keep_the_short_edge_cases() -> None:
    shapes = _drawn(sv_st.kernel_shapes())
    short = [(r, c) for r, c in shapes if c <= 64]
    assert len(short) > len(shapes) // 2
    assert any(r == c > 1 for r, c in short)  # N == D: a missing keepdims broadcasts
    assert any(c % 8 for _, c in short)  # not a SIMD multiple
    assert (1, 1) in short


def test_long_rows_keep_few_entries() -> None:
    for r, c in _drawn(sv_st.kernel_shapes()):
        assert r * c <= max(1 << 15, 24 * 64), (r, c)


@pytest.mark.parametrize(
    "domain",
    [
        Domain(rows=(2, 5), cols=(100, 300)),
        Domain(cols=(128, 4096), cols_multiple_of=128),
        Domain(rows=(1, 1), cols=(1, 16), cols_multiple_of=8),
        Domain(rows=(64, 64), cols=(512, 512)),
    ],
    ids=repr,
)
def test_declared_domain_restricts_every_drawn_shape(domain: Domain) -> None:
    rows = domain.rows or (1, 1 << 20)
    cols = domain.cols or (1, sv_st.LONG_MAX_COLS)
    shapes = _drawn(sv_st.shapes_in(domain), 100)
    for r, c in shapes:
        assert rows[0] <= r <= rows[1]
        assert cols[0] <= c <= cols[1]
        assert c % domain.cols_multiple_of == 0
    assert len({c for _, c in shapes}) > 1 or cols[0] == cols[1]


def test_domain_reaches_the_invariant_cases() -> None:
    domain = Domain(rows=(3, 3), cols=(256, 256))
    cases = get_invariant("matches_reference").cases(np.dtype(np.float32), domain)
    assert {case["x"].shape for case in _drawn(cases, 20)} == {(3, 256)}


def test_permutations_of_long_rows_are_permutations() -> None:
    for perm in _drawn(sv_st.permutations(4097), 30):
        assert perm.dtype == np.intp
        assert np.array_equal(np.sort(perm), np.arange(4097))


BAD_KERNEL_SHAPES: list[tuple[Callable[[], object], type[Exception], str]] = [
    (lambda: sv_st.kernel_shapes(min_cols=0), InvalidArgument, "min_cols=0"),
    (lambda: sv_st.kernel_shapes(min_cols=9, max_cols=8), InvalidArgument, "min_cols=9"),
    (lambda: sv_st.kernel_shapes(min_rows=3, max_rows=2), InvalidArgument, "min_rows=3"),
    (lambda: sv_st.kernel_shapes(cols_multiple_of=0), InvalidArgument, "cols_multiple_of=0"),
    (
        lambda: sv_st.kernel_shapes(min_cols=5, max_cols=7, cols_multiple_of=8),
        InvalidArgument,
        "cols_multiple_of=8",
    ),
    (lambda: sv_st.kernel_shapes(max_cols=2.5), TypeError, "max_cols=2.5"),  # type: ignore[arg-type]  # the point
]


@pytest.mark.parametrize(("call", "error", "match"), BAD_KERNEL_SHAPES)
def test_kernel_shapes_validates_its_arguments(
    call: Callable[[], object], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        call()


# --------------------------------------------------------------------------- recurring_cols

_PALETTE = {*sv_st.RECURRING_SHORT_COLS, *sv_st.BOUNDARY_COLS, *sv_st.RECURRING_ARBITRARY_COLS}


def test_recurring_cols_draw_few_lengths_and_keep_the_edge_cases() -> None:
    """A jax target's shapes: a palette of lengths, every one a length as drawn (nothing
    padded here), with each remainder mod 8, the block boundaries and squares."""
    shapes = _drawn(sv_st.kernel_shapes(recurring_cols=True), n=1000)
    cols = {c for _, c in shapes}
    assert cols <= _PALETTE, sorted(cols - _PALETTE)
    assert len(cols) <= len(_PALETTE) < 50
    short = {c for c in cols if c <= 64}
    assert {c % 8 for c in short if c < 8} | {0} == set(range(8))  # alone: D < 8
    assert {c % 8 for c in short if c > 8} >= {1, 2, 3, 4, 5, 6, 7}  # past a block of 8
    assert {127, 128, 129} <= cols
    assert len(cols & set(sv_st.BOUNDARY_COLS)) >= 15, sorted(cols)
    assert cols & set(sv_st.RECURRING_ARBITRARY_COLS)  # long, away from a boundary
    assert any(r == c > 8 for r, c in shapes)  # N == D past a block of 8
    assert (1, 1) in shapes
    for r, c in shapes:
        assert r * c <= max(1 << 15, 24 * 64), (r, c)


def test_recurring_cols_reach_every_palette_length() -> None:
    strategy = sv_st.kernel_shapes(recurring_cols=True)
    for length in sorted(_PALETTE - {8193}):

        def has_length(shape: tuple[int, int], n: int = length) -> bool:
            return shape[1] == n

        assert find(strategy, has_length, settings=_FIND)[1] == length


@pytest.mark.parametrize(
    "domain",
    [
        Domain(rows=(2, 5), cols=(100, 300), recurring_cols=True),
        Domain(cols=(128, 4096), cols_multiple_of=128, recurring_cols=True),
        Domain(rows=(1, 1), cols=(1, 16), cols_multiple_of=8, recurring_cols=True),
        Domain(cols=(10, 20), recurring_cols=True),
    ],
    ids=repr,
)
def test_recurring_cols_stay_inside_a_declared_domain(domain: Domain) -> None:
    rows = domain.rows or (1, 1 << 20)
    cols = domain.cols or (1, sv_st.LONG_MAX_COLS)
    shapes = _drawn(sv_st.shapes_in(domain), 200)
    for r, c in shapes:
        assert rows[0] <= r <= rows[1]
        assert cols[0] <= c <= cols[1]
        assert c % domain.cols_multiple_of == 0
    drawn = {c for _, c in shapes}
    assert len(drawn) > 1
    # the domain's shortest length is a palette length too: its edge case is kept
    k = domain.cols_multiple_of
    assert -(-cols[0] // k) * k in drawn


def test_recurring_cols_leave_the_default_shapes_alone() -> None:
    """Off by default: without it, lengths outside the palette are drawn."""
    cols = {c for _, c in _drawn(sv_st.kernel_shapes(), n=300)}
    assert cols - _PALETTE


def test_recurring_cols_must_be_a_bool() -> None:
    # Wrong types on purpose: the TypeError a caller without a type checker gets is tested.
    with pytest.raises(TypeError, match="recurring_cols must be a bool, got recurring_cols=1"):
        sv_st.kernel_shapes(recurring_cols=1)  # type: ignore[arg-type]  # a wrong type, tested
    with pytest.raises(TypeError, match="recurring_cols must be a bool"):
        Domain(recurring_cols="yes")  # type: ignore[arg-type]  # a wrong type, tested


@pytest.mark.parametrize(
    ("domain", "largest"),
    [
        (Domain(), (4, 8192)),  # 2**15 entries: a long row's budget
        (Domain(rows=(3000, 3000), cols=(5000, 5000)), (3000, 5000)),  # one shape: exact
        (Domain(rows=(100, 200), cols=(1000, 1000)), (100, 1000)),  # the fewest rows decide
        (Domain(rows=(1, 1), cols=(1, 16), cols_multiple_of=8), (1, 16)),
        (Domain(rows=(2, 5), cols=(100, 300)), (5, 300)),  # the rows' top, under the budget
        (Domain(cols=(10, 20)), (24, 20)),  # short rows only
        (Domain(cols=(128, 4096), cols_multiple_of=128), (8, 4096)),
        (Domain(rows=(64, 64), cols=(512, 512), recurring_cols=True), (64, 512)),
    ],
    ids=repr,
)
def test_no_drawn_shape_has_more_entries_than_the_largest(
    domain: Domain, largest: tuple[int, int]
) -> None:
    """``largest_shape_in`` bounds what ``shapes_in`` draws (the memory check rests on it),
    and is exact where a declaration decides."""
    assert sv_st.largest_shape_in(domain) == largest
    bound = largest[0] * largest[1]
    shapes = _drawn(sv_st.shapes_in(domain), 300)
    assert max(r * c for r, c in shapes) <= bound


@given(
    st.integers(1, 40),
    st.integers(0, 3000),
    st.integers(1, 9000),
    st.integers(0, 9000),
    st.integers(1, 200),
    st.booleans(),
    st.data(),
)
@settings(max_examples=100, deadline=None, database=None)
def test_the_largest_shape_bounds_any_domain(
    min_rows: int,
    more_rows: int,
    min_cols: int,
    more_cols: int,
    multiple: int,
    recurring: bool,
    data: st.DataObject,
) -> None:
    cols = (min_cols, min_cols + more_cols)
    assume(-(-cols[0] // multiple) * multiple <= cols[1])
    domain = Domain((min_rows, min_rows + more_rows), cols, multiple, recurring)
    rows, width = sv_st.largest_shape_in(domain)
    assert domain.rows is not None
    assert domain.rows[0] <= rows <= domain.rows[1]
    for _ in range(20):
        r, c = data.draw(sv_st.shapes_in(domain))
        assert r * c <= rows * width
