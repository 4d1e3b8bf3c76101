"""Meta-tests of the label strategies: what each generates is what its docstring claims.

Contracts (every example): dtype, shape, range, exactness and rows summing to exactly 1;
coverage (``find`` within its default budget): the last class, one-hot, near-one-hot and
spread rows with zeros; argument validation naming the argument.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from conftest import require
from hypothesis import Phase, find, given, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument
from numpy.typing import NDArray

from softmax_verify.core.dtypes import named_dtype
from softmax_verify.strategies import (
    DTYPES,
    LABEL_FORMS,
    class_labels,
    labels,
    one_hot,
    probability_labels,
)

FIND_SETTINGS = settings(max_examples=2000, phases=(Phase.generate,))
SIZES = st.tuples(st.integers(1, 6), st.integers(1, 300))
BY_DTYPE = pytest.mark.parametrize("dtype", [*DTYPES, np.dtype(np.float16)], ids=str)


@given(SIZES.flatmap(lambda s: st.tuples(st.just(s), class_labels(*s))))
def test_class_labels_are_int64_indices_in_range(drawn: tuple[tuple[int, int], Any]) -> None:
    (n, c), y = drawn
    assert y.dtype == np.int64
    assert y.shape == (n,)
    assert ((y >= 0) & (y < c)).all()
    assert y.flags.c_contiguous


@BY_DTYPE
@given(data=st.data())
def test_probability_rows_are_exact_and_sum_to_one(dtype: np.dtype[Any], data: Any) -> None:
    n, c = data.draw(SIZES, label="shape")
    q = data.draw(probability_labels(n, c, dtype), label="q")
    assert q.dtype == dtype
    assert q.shape == (n, c)
    assert q.flags.c_contiguous
    assert q.flags.owndata
    q64 = q.astype(np.float64)
    assert (q64 >= 0).all()
    for row in q64:
        assert math.fsum(row.tolist()) == 1.0  # exactly, in the dtype's own values
    bits = 11 if dtype == np.float16 else 12
    assert np.array_equal(q64 * 2**bits, np.round(q64 * 2**bits))  # dyadic


def test_bfloat16_probability_rows_fit_its_significand() -> None:
    require("ml_dtypes")  # bfloat16 is ml_dtypes' (the half extra)
    bf16 = named_dtype("bfloat16")
    q = find(probability_labels(3, 7, bf16), lambda a: (a.astype(np.float64) > 0).sum() > 3)
    q64 = q.astype(np.float64)
    assert np.array_equal(q64 * 256, np.round(q64 * 256))
    for row in q64:
        assert math.fsum(row.tolist()) == 1.0


@pytest.mark.parametrize(
    ("what", "condition"),
    [
        ("the last class", lambda y: bool((y == 299).any())),
        ("two rows at different classes", lambda y: len(set(y.tolist())) > 1),
    ],
)
def test_class_labels_reach(what: str, condition: Any) -> None:
    find(class_labels(3, 300), condition, settings=FIND_SETTINGS)


def _near_one_hot(q: NDArray[Any]) -> bool:
    top = q.max(axis=1)
    return bool(((top < 1) & (top >= 1 - 3 / 4096)).any())


@pytest.mark.parametrize(
    ("what", "condition"),
    [
        ("one-hot rows", lambda q: bool((q.max(axis=1) == 1).any())),
        ("near-one-hot rows", _near_one_hot),
        (
            "spread rows with zeros",
            lambda q: bool((((q > 0).sum(axis=1) > 5) & (q == 0).any(axis=1)).any()),
        ),
    ],
)
def test_probability_rows_reach(what: str, condition: Any) -> None:
    find(probability_labels(2, 40), condition, settings=FIND_SETTINGS)


@pytest.mark.parametrize("form", LABEL_FORMS)
@given(data=st.data())
def test_labels_of_each_form(form: str, data: Any) -> None:
    y = data.draw(labels(form, 4, 9, np.float32))
    if form == "index":
        assert (y.dtype, y.shape) == (np.dtype(np.int64), (4,))
    else:
        assert (y.dtype, y.shape) == (np.dtype(np.float32), (4, 9))
        assert (y.astype(np.float64).sum(axis=1) == 1).all()
    if form == "onehot":
        assert set(np.unique(y).tolist()) <= {0.0, 1.0}


def test_one_hot() -> None:
    np.testing.assert_array_equal(
        one_hot(np.array([2, 0]), 3, np.float64), [[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]
    )


@pytest.mark.parametrize(
    ("call", "error", "named"),
    [
        (lambda: class_labels(0, 3), InvalidArgument, "n_rows"),
        (lambda: class_labels(2, 1.5), TypeError, "n_classes"),  # type: ignore[arg-type]  # the point
        (lambda: probability_labels(2, 0), InvalidArgument, "n_classes"),
        (lambda: probability_labels(2, 3, np.int32), TypeError, "dtype"),
        (lambda: labels("soft", 2, 3), InvalidArgument, "form"),
        (lambda: labels(1, 2, 3), TypeError, "form"),  # type: ignore[arg-type]  # the point
    ],
)
def test_bad_arguments_are_named(call: Any, error: type, named: str) -> None:
    with pytest.raises(error, match=rf"^{named}"):
        call()
