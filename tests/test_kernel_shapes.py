"""Meta-tests: the shapes the checks draw include long rows and block boundaries,
stay inside a declared domain, and still include the short-row edge cases."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis.errors import InvalidArgument
from hypothesis.strategies import SearchStrategy

from softmax_verify import strategies as sv_st
from softmax_verify.domain import Domain
from softmax_verify.invariants import get_invariant


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
    # max_cols comes up in 1 of 6 * 3 * 8 = 144 examples (long, arbitrary, clamped to the
    # top): 1000 examples miss it with probability (143/144)**1000, under 0.1 %.
    cols = {c for _, c in _drawn(sv_st.kernel_shapes(), n=1000)}
    assert max(cols) == sv_st.LONG_MAX_COLS
    # Past a block of 128 but not a multiple (a D // 128 tail bug shows), likewise 1024.
    assert any(c > 128 and c % 128 for c in cols)
    assert any(c > 1024 and c % 1024 for c in cols)
    boundary = cols & set(sv_st.BOUNDARY_COLS)
    assert {127, 128, 129} & boundary
    assert len(boundary) >= 10, sorted(boundary)
    assert any(c not in sv_st.BOUNDARY_COLS and c > 64 for c in cols)  # arbitrary lengths


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
    shapes = _drawn(domain.shapes(), 100)
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
