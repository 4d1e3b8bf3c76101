"""Meta-tests for ``strategies``: each strategy generates what its docstring claims.

Two kinds of test, in the style of array-api-tests' meta-tests:

* coverage: ``hypothesis.find`` must reach every interesting case a strategy
  promises (ties, constant rows, dominant entries, rows far apart, near-overflow
  and subnormal magnitudes, all-ones upstreams, ...) within its default budget;
* contracts: ``@given`` tests that the stated bounds hold for every example
  (exact dtype, shape, finiteness, magnitude bounds, contiguity, ownership).

Argument validation is tested too: bad arguments raise when the strategy
function is called, with a message naming the argument.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import Phase, find, given, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument
from hypothesis.strategies import SearchStrategy
from numpy.typing import NDArray

import softmax_verify.strategies as strategies
from softmax_verify.strategies import (
    DTYPES,
    directions,
    logits,
    permutations,
    shapes,
    shifts,
    upstreams,
    well_conditioned_logits,
)

Array = NDArray[np.floating[Any]]
F32, F64 = np.dtype(np.float32), np.dtype(np.float64)

dtype_params = pytest.mark.parametrize("dtype", DTYPES, ids=str)
# find()'s own default budget, generation only; other settings follow the loaded profile.
FIND_SETTINGS = settings(max_examples=2000, phases=(Phase.generate,))


def assert_array_contract(x: Array, dtype: np.dtype[Any], bound: float | None = None) -> None:
    """The guarantees every generated array carries."""
    assert isinstance(x, np.ndarray)
    assert x.dtype == dtype
    assert x.ndim == 2
    assert x.shape[0] >= 1
    assert x.shape[1] >= 1
    assert x.flags.c_contiguous
    assert x.flags.owndata
    assert np.isfinite(x).all()
    if bound is not None:
        assert float(np.max(np.abs(x.astype(np.float64)))) <= bound


def finds(strategy: SearchStrategy[Any], predicate: Callable[[Any], bool]) -> Any:
    """The first example satisfying ``predicate``, within ``find``'s default budget.

    Shrinking is skipped: coverage needs an example, not the smallest one (the
    ``*_shrink_*`` tests check shrinking). Raises ``NoSuchExample`` on failure.
    """
    found = find(strategy, predicate, settings=FIND_SETTINGS)
    assert predicate(found)
    return found


def distinct(row: NDArray[Any]) -> int:
    return int(np.unique(row).size)


# --------------------------------------------------------------------------- package


def test_public_api() -> None:
    assert strategies.__all__ == [
        "BOUNDARY_COLS",
        "DTYPES",
        "HALF_DTYPES",
        "LABEL_FORMS",
        "LONG_MAX_COLS",
        "RECURRING_ARBITRARY_COLS",
        "RECURRING_SHORT_COLS",
        "class_labels",
        "directions",
        "kernel_shapes",
        "labels",
        "largest_shape_in",
        "logits",
        "masked_logits",
        "one_hot",
        "permutations",
        "probability_labels",
        "shapes",
        "shapes_in",
        "shifts",
        "upstreams",
        "well_conditioned_logits",
    ]
    assert DTYPES == (F32, F64)


# --------------------------------------------------------------------------- shapes


@given(shapes())
def test_shapes_default_bounds(shape: tuple[int, int]) -> None:
    n_rows, n_cols = shape
    assert isinstance(n_rows, int)
    assert isinstance(n_cols, int)
    assert 1 <= n_rows <= 24
    assert 1 <= n_cols <= 64


@given(
    st.integers(1, 30).flatmap(lambda lo: st.tuples(st.just(lo), st.integers(lo, 40))),
    st.integers(1, 30).flatmap(lambda lo: st.tuples(st.just(lo), st.integers(lo, 40))),
    st.data(),
)
def test_shapes_custom_bounds(
    rows: tuple[int, int], cols: tuple[int, int], data: st.DataObject
) -> None:
    shape = data.draw(
        shapes(min_rows=rows[0], max_rows=rows[1], min_cols=cols[0], max_cols=cols[1])
    )
    assert rows[0] <= shape[0] <= rows[1]
    assert cols[0] <= shape[1] <= cols[1]


@pytest.mark.parametrize(
    "predicate",
    [
        pytest.param(lambda s: s[0] == 1, id="single-row"),
        pytest.param(lambda s: s[1] == 1, id="single-column"),
        pytest.param(lambda s: s[0] == s[1] >= 2, id="square"),
        pytest.param(lambda s: s[1] % 8 != 0 and s[1] > 8, id="cols-not-multiple-of-8"),
        pytest.param(lambda s: s[1] == 64, id="max-cols"),
        pytest.param(lambda s: s[0] == 24, id="max-rows"),
        pytest.param(lambda s: s[0] == 24 and s[1] == 64, id="largest"),
    ],
)
def test_shapes_cover(predicate: Callable[[tuple[int, int]], bool]) -> None:
    finds(shapes(), predicate)


def test_shapes_shrink_towards_small() -> None:
    assert find(shapes(), lambda s: True) == (1, 1)
    # Square shapes come from their own branch (one shape in four), a local minimum for the
    # shrinker: from (5, 5) it cannot leave the branch and keep s[1] >= 5 in one step. Which
    # minimum is reached depends on the run (derandomized profiles give (3, 5)); both are the
    # smallest shapes of their branch.
    assert find(shapes(), lambda s: s[0] >= 3 and s[1] >= 5) in {(3, 5), (5, 5)}


# --------------------------------------------------------------------------- logits


@given(st.sampled_from(DTYPES), st.data())
def test_logits_contract_default(dtype: np.dtype[Any], data: st.DataObject) -> None:
    x = data.draw(logits(dtype))
    assert_array_contract(x, dtype, float(np.finfo(dtype).max))
    assert x.shape[0] <= 24
    assert x.shape[1] <= 64


@given(
    st.sampled_from(DTYPES),
    st.floats(1e-30, 1e300) | st.sampled_from([0.1, 1.0, 10.0, 1e4, 3e38, 1e308]),
    st.data(),
)
def test_logits_respect_max_magnitude(
    dtype: np.dtype[Any], max_magnitude: float, data: st.DataObject
) -> None:
    x = data.draw(logits(dtype, max_magnitude=max_magnitude))
    assert_array_contract(x, dtype, max_magnitude)
    # The bound also holds when compared in the array's own dtype.
    assert (np.abs(x) <= dtype.type(min(max_magnitude, float(np.finfo(dtype).max)))).all()


@given(shapes(max_rows=5, max_cols=7), st.data())
def test_logits_fixed_shape(shape: tuple[int, int], data: st.DataObject) -> None:
    assert data.draw(logits(shape=shape)).shape == shape


@given(st.data())
def test_logits_shape_strategy(data: st.DataObject) -> None:
    x = data.draw(logits(np.float32, shape=shapes(min_rows=2, max_rows=3, max_cols=5)))
    assert_array_contract(x, F32)
    assert 2 <= x.shape[0] <= 3
    assert x.shape[1] <= 5


def _has_tie_not_constant(x: Array) -> bool:
    return any(np.sum(row == row.max()) >= 2 and distinct(row) >= 2 for row in x)


def _has_constant_row(x: Array) -> bool:
    return x.shape[1] >= 2 and any(distinct(row) == 1 for row in x)


def _has_dominant_entry(x: Array) -> bool:
    if x.shape[1] < 2:
        return False
    top2 = np.sort(x.astype(np.float64), axis=1)[:, -2:]
    return bool(np.any(top2[:, 1] >= top2[:, 0] + 30.0))  # a difference could overflow


def _has_far_rows(x: Array) -> bool:
    maxima = x.astype(np.float64).max(axis=1)
    return bool(maxima.max() >= maxima.min() + 1000.0)  # a difference could overflow


def _near_max(x: Array) -> bool:
    return bool(np.any(np.abs(x) >= np.finfo(x.dtype).max / 2))


def _tiny_nonzero(x: Array) -> bool:
    a = np.abs(x.astype(np.float64))
    return bool(np.any((a > 0) & (a <= 1e-30)))


def _subnormal(x: Array) -> bool:
    a = np.abs(x)
    return bool(np.any((a > 0) & (a < np.finfo(x.dtype).smallest_normal)))


def _plain_moderate(x: Array) -> bool:
    return bool(np.all(np.abs(x) <= 10.0)) and x.shape[1] >= 4 and distinct(x[0]) == x.shape[1]


def _masked(x: Array) -> bool:
    lowest = -np.finfo(x.dtype).max
    return any(np.any(row == lowest) and np.any(np.abs(row) <= 10.0) for row in x)


@dtype_params
@pytest.mark.parametrize(
    "predicate",
    [
        pytest.param(_has_tie_not_constant, id="tie-at-max"),
        pytest.param(_has_constant_row, id="constant-row"),
        pytest.param(_has_dominant_entry, id="dominant-entry"),
        pytest.param(_has_far_rows, id="far-rows"),
        pytest.param(_near_max, id="near-max"),
        pytest.param(_tiny_nonzero, id="tiny"),
        pytest.param(_subnormal, id="subnormal"),
        pytest.param(_plain_moderate, id="moderate"),
        pytest.param(_masked, id="masked"),
        pytest.param(lambda x: x.shape[0] == 1, id="single-row"),
        pytest.param(lambda x: x.shape[0] == x.shape[1] >= 2, id="square"),
        pytest.param(lambda x: x.shape[1] == 64, id="max-cols"),
        pytest.param(lambda x: np.all(x == 0), id="zeros"),
    ],
)
def test_logits_cover(dtype: np.dtype[Any], predicate: Callable[[Array], bool]) -> None:
    finds(logits(dtype), predicate)


@dtype_params
def test_logits_cover_with_max_magnitude(dtype: np.dtype[Any]) -> None:
    strategy = logits(dtype, max_magnitude=1e4)
    finds(strategy, lambda x: bool(np.any(np.abs(x) >= 5e3)))
    finds(strategy, _has_far_rows)
    finds(strategy, _has_dominant_entry)


def test_logits_shrink_to_zeros() -> None:
    x = find(logits(), lambda x: True)
    assert x.shape == (1, 1)
    assert x[0, 0] == 0


# --------------------------------------------------------------------------- well-conditioned


@given(
    st.sampled_from(DTYPES),
    st.floats(1e-6, 100.0),
    st.floats(0.0, 1.0),
    st.data(),
)
def test_well_conditioned_contract(
    dtype: np.dtype[Any], max_abs: float, fraction: float, data: st.DataObject
) -> None:
    spread = max(2.0 * max_abs * fraction, 1e-9)
    x = data.draw(well_conditioned_logits(dtype, spread=spread, max_abs=max_abs))
    assert_array_contract(x, dtype, max_abs)
    x64 = x.astype(np.float64)
    assert (x64.max(axis=1) - x64.min(axis=1) <= spread).all()


@given(st.sampled_from(DTYPES), st.data())
def test_well_conditioned_contract_default(dtype: np.dtype[Any], data: st.DataObject) -> None:
    x = data.draw(well_conditioned_logits(dtype))
    assert_array_contract(x, dtype, 32.0)
    x64 = x.astype(np.float64)
    assert (x64.max(axis=1) - x64.min(axis=1) <= 12.0).all()


@dtype_params
@pytest.mark.parametrize(
    "predicate",
    [
        pytest.param(_has_tie_not_constant, id="tie-at-max"),
        pytest.param(_has_constant_row, id="constant-row"),
        pytest.param(lambda x: bool(np.any(np.ptp(x, axis=1) >= 11.0)), id="full-spread"),
        pytest.param(lambda x: bool(np.any(np.abs(x) >= 25.0)), id="large-centre"),
        pytest.param(lambda x: bool(np.ptp(x.max(axis=1)) >= 30.0), id="rows-apart"),
        pytest.param(lambda x: x.shape[1] >= 4 and distinct(x[0]) == x.shape[1], id="random"),
    ],
)
def test_well_conditioned_cover(dtype: np.dtype[Any], predicate: Callable[[Array], bool]) -> None:
    finds(well_conditioned_logits(dtype), predicate)


# --------------------------------------------------------------------------- upstreams


@given(st.sampled_from(DTYPES), shapes(), st.floats(1e-3, 1e30), st.data())
def test_upstreams_contract(
    dtype: np.dtype[Any], shape: tuple[int, int], max_magnitude: float, data: st.DataObject
) -> None:
    dout = data.draw(upstreams(shape, dtype, max_magnitude=max_magnitude))
    assert_array_contract(dout, dtype, max_magnitude)
    assert dout.shape == shape


def _one_hot_row(x: Array) -> bool:
    return x.shape[1] >= 2 and any(np.count_nonzero(row) == 1 and row.max() == 1.0 for row in x)


def _zero_row_among_nonzero(x: Array) -> bool:
    zero = ~x.any(axis=1)
    return bool(zero.any() and not zero.all())


def _constant_nonzero(x: Array) -> bool:
    return bool(np.all(x == x.flat[0])) and x.flat[0] != 0 and x.flat[0] != 1


def _random_order_one(x: Array) -> bool:
    return bool(np.all(np.abs(x) <= 1.0)) and distinct(x) >= x.size // 2 + 1


@dtype_params
@pytest.mark.parametrize(
    "predicate",
    [
        pytest.param(lambda x: bool(np.all(x == 1)), id="all-ones"),
        pytest.param(_zero_row_among_nonzero, id="zero-row"),
        pytest.param(_one_hot_row, id="one-hot-row"),
        pytest.param(_constant_nonzero, id="constant-array"),
        pytest.param(_random_order_one, id="random-O(1)"),
        pytest.param(lambda x: bool(np.abs(x).max() >= 500.0), id="large"),
    ],
)
def test_upstreams_cover(dtype: np.dtype[Any], predicate: Callable[[Array], bool]) -> None:
    finds(upstreams((4, 6), dtype), predicate)


def test_upstreams_shrink_to_ones() -> None:
    assert (find(upstreams((3, 5)), lambda x: True) == 1).all()


# --------------------------------------------------------------------------- directions


@given(st.sampled_from(DTYPES), shapes(), st.data())
def test_directions_contract(
    dtype: np.dtype[Any], shape: tuple[int, int], data: st.DataObject
) -> None:
    v = data.draw(directions(shape, dtype))
    assert_array_contract(v, dtype, 1.0)
    assert v.shape == shape
    assert (np.abs(v).max(axis=1) >= 0.5).all()


@dtype_params
@pytest.mark.parametrize(
    "predicate",
    [
        pytest.param(lambda v: bool(np.all(np.abs(v) == 1)), id="signs"),
        pytest.param(lambda v: bool(np.all(np.count_nonzero(v, axis=1) == 1)), id="basis"),
        pytest.param(lambda v: bool(np.any((np.abs(v) > 0) & (np.abs(v) < 0.5))), id="uniform"),
        pytest.param(lambda v: bool(np.any(v < 0) and np.any(v > 0)), id="both-signs"),
    ],
)
def test_directions_cover(dtype: np.dtype[Any], predicate: Callable[[Array], bool]) -> None:
    finds(directions((3, 8), dtype), predicate)


# --------------------------------------------------------------------------- shifts


@given(st.sampled_from(DTYPES), st.integers(1, 100), st.floats(1e-3, 1e30), st.data())
def test_shifts_contract(
    dtype: np.dtype[Any], n_rows: int, max_magnitude: float, data: st.DataObject
) -> None:
    c = data.draw(shifts(n_rows, dtype, max_magnitude=max_magnitude))
    assert_array_contract(c, dtype, max_magnitude)
    assert c.shape == (n_rows, 1)


@dtype_params
@pytest.mark.parametrize(
    "predicate",
    [
        pytest.param(lambda c: bool(np.any(c == 0)), id="zero"),
        pytest.param(lambda c: bool(np.any((c != 0) & (c == np.round(c)))), id="integer"),
        pytest.param(lambda c: bool(np.any(c != np.round(c))), id="fraction"),
        pytest.param(lambda c: bool(np.any(c >= 5e3)), id="large-positive"),
        pytest.param(lambda c: bool(np.any(c <= -5e3)), id="large-negative"),
        pytest.param(lambda c: bool(np.any(c > 0) and np.any(c < 0)), id="mixed-signs"),
        pytest.param(lambda c: np.unique(c).size == c.size, id="all-different"),
    ],
)
def test_shifts_cover(dtype: np.dtype[Any], predicate: Callable[[Array], bool]) -> None:
    finds(shifts(4, dtype), predicate)


# --------------------------------------------------------------------------- permutations


@given(st.integers(1, 70), st.data())
def test_permutations_contract(n: int, data: st.DataObject) -> None:
    p = data.draw(permutations(n))
    assert isinstance(p, np.ndarray)
    assert p.dtype == np.intp
    assert p.shape == (n,)
    assert sorted(p.tolist()) == list(range(n))


@pytest.mark.parametrize("n", [2, 3, 64])
def test_permutations_cover_non_identity(n: int) -> None:
    finds(permutations(n), lambda p: bool(np.any(p != np.arange(n))))


def test_permutations_shrink_to_identity() -> None:
    assert find(permutations(5), lambda p: True).tolist() == [0, 1, 2, 3, 4]


# --------------------------------------------------------------------------- composition


@given(st.data())
def test_strategies_compose_on_a_drawn_array(data: st.DataObject) -> None:
    """The way property tests use them: everything sized and typed from ``x``."""
    x = data.draw(logits(data.draw(st.sampled_from(DTYPES))))
    n_rows, n_cols = x.shape
    dout = data.draw(upstreams(x.shape, x.dtype))
    v = data.draw(directions(x.shape, x.dtype))
    c = data.draw(shifts(n_rows, x.dtype))
    p = data.draw(permutations(n_cols))
    assert dout.shape == v.shape == x.shape
    assert dout.dtype == v.dtype == c.dtype == x.dtype
    assert c.shape == (n_rows, 1)
    assert (x[:, p].shape, (x + c).shape) == (x.shape, x.shape)


# --------------------------------------------------------------------------- validation


def ill_typed(value: object) -> Any:
    """Pass a deliberately wrong argument past the type checker."""
    return value


BAD_ARGUMENTS: list[Any] = [
    # (call, expected exception, the argument name the message must contain)
    (lambda: shapes(max_cols=0), InvalidArgument, r"max_cols=0 must be at least 1"),
    (lambda: shapes(min_rows=0), InvalidArgument, r"min_rows=0"),
    (lambda: shapes(min_rows=5, max_rows=2), InvalidArgument, r"min_rows=5"),
    (lambda: shapes(min_cols=9, max_cols=8), InvalidArgument, r"min_cols=9"),
    (lambda: shapes(max_rows=ill_typed(2.5)), TypeError, r"max_rows=2.5"),
    (lambda: shapes(min_cols=ill_typed(True)), TypeError, r"min_cols=True"),
    (lambda: logits(np.int32), TypeError, r"dtype"),
    (lambda: logits(np.int16), TypeError, r"dtype"),
    (lambda: logits("complex128"), TypeError, r"dtype"),
    (lambda: logits("no such dtype"), TypeError, r"dtype"),
    (lambda: logits(ill_typed(None)), TypeError, r"dtype=None"),
    (lambda: logits(">f8" if np.little_endian else "<f8"), TypeError, r"dtype"),
    (lambda: logits(max_magnitude=0.0), InvalidArgument, r"max_magnitude=0.0"),
    (lambda: logits(max_magnitude=-1.0), InvalidArgument, r"max_magnitude=-1.0"),
    (lambda: logits(max_magnitude=math.inf), InvalidArgument, r"max_magnitude=inf"),
    (lambda: logits(max_magnitude=math.nan), InvalidArgument, r"max_magnitude=nan"),
    (lambda: logits(max_magnitude=ill_typed("1")), TypeError, r"max_magnitude='1'"),
    (lambda: logits(np.float32, max_magnitude=1e-50), InvalidArgument, r"max_magnitude"),
    (lambda: logits(shape=(0, 3)), InvalidArgument, r"shape\[0\]=0"),
    (lambda: logits(shape=ill_typed((3,))), InvalidArgument, r"shape=\(3,\)"),
    (lambda: logits(shape=ill_typed([2, 3])), TypeError, r"shape=\[2, 3\]"),
    (lambda: logits(shape=ill_typed((2, 3.0))), TypeError, r"shape\[1\]=3.0"),
    (lambda: well_conditioned_logits(spread=0.0), InvalidArgument, r"spread=0.0"),
    (lambda: well_conditioned_logits(max_abs=-1.0), InvalidArgument, r"max_abs=-1.0"),
    (lambda: well_conditioned_logits(spread=100.0, max_abs=10.0), InvalidArgument, r"spread"),
    (lambda: well_conditioned_logits(np.int8), TypeError, r"dtype"),
    (lambda: upstreams((2, 0)), InvalidArgument, r"shape\[1\]=0"),
    (lambda: upstreams((2, 3), np.int64), TypeError, r"dtype"),
    (lambda: upstreams((2, 3), max_magnitude=0), InvalidArgument, r"max_magnitude=0"),
    (lambda: directions(ill_typed([2, 3])), TypeError, r"shape"),
    (lambda: directions((2, 3), "float8"), TypeError, r"dtype"),
    (lambda: shifts(0), InvalidArgument, r"n_rows=0"),
    (lambda: shifts(ill_typed(2.0)), TypeError, r"n_rows=2.0"),
    (lambda: shifts(2, max_magnitude=math.inf), InvalidArgument, r"max_magnitude=inf"),
    (lambda: permutations(0), InvalidArgument, r"n=0 must be at least 1"),
    (lambda: permutations(ill_typed(2.5)), TypeError, r"n=2.5"),
]


@pytest.mark.parametrize(("call", "error", "match"), BAD_ARGUMENTS)
def test_invalid_arguments_raise_eagerly(
    call: Callable[[], object], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        call()


def test_invalid_shape_from_strategy_raises_on_draw() -> None:
    strategy = logits(shape=st.just((0, 3)))  # cannot be checked until drawn
    with pytest.raises(InvalidArgument, match=r"shape"):
        find(strategy, lambda x: True)


def test_numpy_integer_shapes_and_dtype_spellings_accepted() -> None:
    x = find(logits("float32", shape=(np.int64(2), np.int64(3))), lambda x: True)
    assert x.shape == (2, 3)
    assert x.dtype == F32
    assert find(upstreams((2, 3), np.dtype("f8")), lambda x: True).dtype == F64
