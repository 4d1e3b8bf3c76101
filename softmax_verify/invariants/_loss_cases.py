"""The inputs each cross-entropy invariant is checked on: logits, labels and upstreams.

A case is a dict of arrays (as every invariant's): ``x`` (N, C) logits; ``labels`` in the
run's form (``Options.labels``: (N,) int64 indices, or (N, C) one-hot or probability rows
in x's dtype); ``g`` the upstream, 0-d for mean and sum, (N,) for none
(``Options.reduction``); and what a check adds (``shift``, ``perm`` and ``rows``, ``g2``,
``a``, ``b``). Index and one-hot labels sit at the row's maximum in one case of three
(confident rows: where a clipped probability shows), at its minimum in another
(confidently wrong rows: the label's probability underflows once the row spreads past
about 104 in float32, 745 in float64, where ``-log(softmax(x))`` gives inf), and anywhere
in the third.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy
from numpy.typing import NDArray

import softmax_verify.strategies as sv_st
from softmax_verify.core.dtypes import finfo
from softmax_verify.core.options import LossOptions
from softmax_verify.invariants._cases import MODERATE, Case, Shapes

__all__ = [
    "fd_loss_case",
    "loss_case",
    "pair_loss_case",
    "permuted_loss_case",
    "shift_loss_case",
]

Arrays = SearchStrategy[NDArray[Any]]
#: The scalar upstream: 1 (what shrinking reaches), then other powers of two and any value.
_SCALARS = st.sampled_from((1.0, 2.0, -0.5, 4.0)) | st.floats(-1e3, 1e3, allow_nan=False)
#: Where an index or one-hot label sits in its row (see the module docstring).
_PLACES = st.sampled_from(("anywhere", "maximum", "minimum"))
_POWERS = st.sampled_from((1.0, -1.0, 2.0, -2.0, 0.5, -0.5, 4.0))


def _half_range(dtype: np.dtype[Any]) -> float:
    """Half the dtype's max: every exact row loss is then at most max + ln C (finite)."""
    return float(finfo(dtype).max) / 2


def _labels(draw: st.DrawFn, x: NDArray[Any], loss: LossOptions) -> NDArray[Any]:
    n, c = x.shape
    drawn = draw(sv_st.labels(loss.labels, n, c, x.dtype), label="labels")
    place = "anywhere" if loss.labels == "probs" else draw(_PLACES, label="label placement")
    if place == "anywhere":
        return drawn
    wide = np.asarray(x, dtype=np.float64)
    at = wide.argmax(axis=1) if place == "maximum" else wide.argmin(axis=1)
    return at.astype(np.int64) if loss.labels == "index" else sv_st.one_hot(at, c, x.dtype)


def _upstream(draw: st.DrawFn, x: NDArray[Any], loss: LossOptions, label: str) -> NDArray[Any]:
    if loss.reduction == "none":
        rows = draw(sv_st.upstreams((1, x.shape[0]), x.dtype), label=label)
        return np.ascontiguousarray(rows[0])
    return np.asarray(draw(_SCALARS, label=label), dtype=x.dtype)


@st.composite
def _cases(
    draw: st.DrawFn, xs: Arrays, dtype: np.dtype[Any], loss: LossOptions, extra: str
) -> Case:
    x = draw(xs, label="x")
    case: Case = {"x": x, "labels": _labels(draw, x, loss), "g": _upstream(draw, x, loss, "g")}
    n, c = x.shape
    if extra == "shift":
        case["shift"] = draw(sv_st.shifts(n, dtype, max_magnitude=1e4), label="shift")
    elif extra == "perms":
        case["perm"] = draw(sv_st.permutations(c), label="perm")
        case["rows"] = draw(sv_st.permutations(n), label="rows")
    elif extra == "pair":
        case["g2"] = _upstream(draw, x, loss, "g2")
        case["a"] = np.array(draw(_POWERS, label="a"), dtype=dtype)
        case["b"] = np.array(draw(_POWERS, label="b"), dtype=dtype)
    return case


def loss_case(dtype: np.dtype[Any], shape: Shapes, loss: LossOptions) -> SearchStrategy[Case]:
    """``x`` of any magnitude up to half the dtype's max, ``labels`` and ``g``."""
    xs = sv_st.logits(dtype, shape=shape, max_magnitude=_half_range(dtype))
    return _cases(xs, dtype, loss, "")


def shift_loss_case(dtype: np.dtype[Any], shape: Shapes, loss: LossOptions) -> SearchStrategy[Case]:
    """``x`` with ``|x| <= 1e4``, labels, ``g``, and per-row shifts ``|c| <= 1e4``."""
    return _cases(sv_st.logits(dtype, shape=shape, max_magnitude=1e4), dtype, loss, "shift")


def permuted_loss_case(
    dtype: np.dtype[Any], shape: Shapes, loss: LossOptions
) -> SearchStrategy[Case]:
    """``loss_case``, a permutation ``perm`` of the classes and one ``rows`` of the rows.

    permutation_equivariance and sample_permutation draw these same cases, so they are
    checked on one stream of examples (``run.sharing``): each sees as many examples of its
    distribution as with a stream of its own, at the cost of one draw."""
    xs = sv_st.logits(dtype, shape=shape, max_magnitude=_half_range(dtype))
    return _cases(xs, dtype, loss, "perms")


def fd_loss_case(dtype: np.dtype[Any], shape: Shapes, loss: LossOptions) -> SearchStrategy[Case]:
    """Well-conditioned ``x`` (rows spread at most 12, ``|x| <= 32``: finite differences are
    accurate there), labels and ``g``."""
    return _cases(sv_st.well_conditioned_logits(dtype, shape=shape), dtype, loss, "")


def pair_loss_case(dtype: np.dtype[Any], shape: Shapes, loss: LossOptions) -> SearchStrategy[Case]:
    """Moderate ``x`` (``|x| <= 100``), labels, two upstreams ``g`` and ``g2``, and powers of
    two ``a``, ``b`` (so ``a g + b g2`` rounds only in the addition)."""
    xs = sv_st.logits(dtype, shape=shape, max_magnitude=MODERATE)
    return _cases(xs, dtype, loss, "pair")
