"""Labels of cross-entropy checks: class indices, one-hot rows, probability rows.

Class indices are int64, one per row, in ``[0, n_classes)``; one-hot and probability rows
are ``(n_rows, n_classes)`` arrays of the logits' dtype. Probability rows are *dyadic*:
each entry is :math:`k_j / 2^b` with integers :math:`k_j \\ge 0` summing to :math:`2^b`,
and :math:`2^b` within the dtype's significand (:math:`b \\le 11` in float16, 8 in
bfloat16, 12 otherwise), so every entry is exact in the dtype and every row sums to
exactly 1: on the probability simplex, where the issue's
:math:`\\operatorname{logsumexp}(x) - \\langle t, x\\rangle` and :math:`-\\sum_j t_j \\log
p_j` are the same function (off it they differ by :math:`\\operatorname{lse}(x)(\\sum_j
t_j - 1)`, and only the second is shift invariant).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument
from hypothesis.extra import numpy as hnp
from hypothesis.strategies import SearchStrategy
from numpy.typing import DTypeLike, NDArray

from ._validation import check_dtype, check_int

__all__ = ["LABEL_FORMS", "class_labels", "labels", "one_hot", "probability_labels"]

#: The label forms ``labels`` draws (``softmax_verify.Options.labels``).
LABEL_FORMS: tuple[str, ...] = ("index", "onehot", "probs")

#: The significand bits of each dtype a dyadic probability may use (at most 12: enough
#: resolution, and entries stay normal in every dtype).
_BITS = {"float16": 11, "bfloat16": 8, "float32": 12, "float64": 12}
_ROW_KINDS = st.sampled_from(("one_hot", "near_one_hot", "two", "spread"))
#: At most this many rows' labels are drawn; the rows after them repeat them in turn. A
#: drawn example holds at most 8 KiB of Hypothesis choices (about 2 to 3 bytes a class
#: index, up to 4 choices a probability row): one draw a row for every row would leave
#: no large batch (``--rows 5000:5000``) drawable at all. Default shapes have fewer rows.
INDEX_ROWS = 1024
PROBABILITY_ROWS = 128
_SEEDS = st.integers(0, 2**32 - 1)


def one_hot(indices: NDArray[Any], n_classes: int, dtype: DTypeLike) -> NDArray[Any]:
    """The one-hot rows of class ``indices`` (N,) in ``dtype``: (N, n_classes), C-contiguous."""
    out = np.zeros((len(indices), n_classes), dtype=check_dtype(dtype))
    out[np.arange(len(indices)), np.asarray(indices, dtype=np.intp)] = 1
    return out


@lru_cache(maxsize=1024)
def _class_labels(n_rows: int, n_classes: int) -> SearchStrategy[NDArray[np.int64]]:
    # One choice per row, drawn in [0, 2C) with the upper half read as the last class
    # (code keyed on C - 1): as often as a one_of with a just(C - 1) branch, at a third of
    # its choices (no branch index, no list continuation), which the ci run's time is
    # mostly made of. Shrinking still takes every row towards class 0.
    last = n_classes - 1
    drawn = hnp.arrays(
        np.int64,
        min(n_rows, INDEX_ROWS),
        elements=st.integers(0, 2 * n_classes - 1),
        fill=st.nothing(),
    )
    return drawn.map(lambda values: np.resize(np.minimum(values, last), n_rows))


def class_labels(n_rows: int, n_classes: int) -> SearchStrategy[NDArray[np.int64]]:
    """Generate ``n_rows`` class indices in ``[0, n_classes)``, int64, one per row.

    Each is drawn anywhere in the range, and about half of them the last class
    (``n_classes - 1``: code that keeps labels in the logits' dtype loses them from 2049
    classes on in float16, 257 in bfloat16). Beyond ``INDEX_ROWS`` rows the drawn labels
    repeat in turn. Shrinks towards class 0 in every row.
    """
    n_rows = check_int(n_rows, "n_rows", min_value=1)
    n_classes = check_int(n_classes, "n_classes", min_value=1)
    return _class_labels(n_rows, n_classes)


def _dyadic_row(draw: st.DrawFn, n_classes: int, total: int) -> NDArray[np.int64]:
    """Integers summing to ``total`` over ``n_classes`` entries, of a drawn kind (simplest
    first): one class; one class short of a few units, given to others; two classes
    sharing; spread over all classes by a seeded multinomial (many zeros on long rows)."""
    k = np.zeros(n_classes, dtype=np.int64)
    label = draw(st.integers(0, n_classes - 1))
    kind = draw(_ROW_KINDS)
    if kind == "one_hot" or n_classes == 1:
        k[label] = total
    elif kind == "near_one_hot":
        spare = draw(st.integers(1, 3))
        k[label] = total - spare
        for _ in range(spare):
            k[draw(st.integers(0, n_classes - 1))] += 1
    elif kind == "two":
        share = draw(st.integers(1, total - 1))
        k[label] += share
        k[draw(st.integers(0, n_classes - 1))] += total - share
    else:
        rng = np.random.default_rng(draw(_SEEDS))
        k = rng.multinomial(total, rng.dirichlet(np.full(n_classes, 0.5))).astype(np.int64)
    return k


@st.composite
def _probability_labels(
    draw: st.DrawFn, n_rows: int, n_classes: int, dtype: np.dtype[Any]
) -> NDArray[Any]:
    total = 2 ** _BITS[dtype.name]
    drawn = [_dyadic_row(draw, n_classes, total) for _ in range(min(n_rows, PROBABILITY_ROWS))]
    rows = np.resize(np.stack(drawn), (n_rows, n_classes))
    return np.ascontiguousarray((rows / total).astype(dtype))


@lru_cache(maxsize=1024)
def _built_probabilities(
    n_rows: int, n_classes: int, dtype: np.dtype[Any]
) -> SearchStrategy[NDArray[Any]]:
    return _probability_labels(n_rows, n_classes, dtype)


def probability_labels(
    n_rows: int, n_classes: int, dtype: DTypeLike = np.float64
) -> SearchStrategy[NDArray[np.floating[Any]]]:
    """Generate ``(n_rows, n_classes)`` probability rows (soft targets) in ``dtype``, each
    summing to exactly 1 (dyadic: the module docstring).

    A row is one-hot, one-hot short of one to three units of :math:`2^{-b}` given to other
    classes (label smoothing's shape, near the confident end), two classes sharing, or
    spread over every class with many zeros (a Dirichlet(1/2) draw). Beyond
    ``PROBABILITY_ROWS`` rows the drawn rows repeat in turn. Exactly ``dtype``,
    C-contiguous, owning its data; shrinks towards one-hot rows at class 0.
    """
    n_rows = check_int(n_rows, "n_rows", min_value=1)
    n_classes = check_int(n_classes, "n_classes", min_value=1)
    return _built_probabilities(n_rows, n_classes, check_dtype(dtype))


def labels(
    form: str, n_rows: int, n_classes: int, dtype: DTypeLike = np.float64
) -> SearchStrategy[NDArray[Any]]:
    """Generate labels of ``form`` (``LABEL_FORMS``) for ``n_rows`` rows of ``n_classes``
    logits of ``dtype``: ``"index"`` (``class_labels``), ``"onehot"`` (those as one-hot rows
    in ``dtype``) or ``"probs"`` (``probability_labels``)."""
    if not isinstance(form, str):
        raise TypeError(f"form={form!r} must be a str, one of {', '.join(LABEL_FORMS)}")
    if form not in LABEL_FORMS:
        raise InvalidArgument(f"form={form!r} must be one of {', '.join(LABEL_FORMS)}")
    resolved = check_dtype(dtype)
    if form == "probs":
        return probability_labels(n_rows, n_classes, resolved)
    indices = class_labels(n_rows, n_classes)
    if form == "index":
        return indices
    return _onehot_of(indices, n_classes, resolved)


@lru_cache(maxsize=1024)
def _onehot_of(
    indices: SearchStrategy[NDArray[np.int64]], n_classes: int, dtype: np.dtype[Any]
) -> SearchStrategy[NDArray[Any]]:
    return indices.map(lambda found: one_hot(found, n_classes, dtype))
