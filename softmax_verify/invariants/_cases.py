"""The inputs each invariant is checked on, as Hypothesis strategies of named arrays.

A case is a dict of arrays (``x``, ``dout``, ...): named so a counterexample
reads as what it is, and JSON-serializable as it stands.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy
from numpy.typing import NDArray

import softmax_verify.strategies as sv_st
from softmax_verify.core.dtypes import finfo

__all__ = ["Case", "Shapes", "backward_case", "forward_case", "pair_case", "shift_case"]

Case = dict[str, NDArray[Any]]
Shapes = SearchStrategy[tuple[int, int]]

#: Logit magnitude for properties that need a non-degenerate Jacobian: beyond
#: about 750 every float64 row is one-hot and every backward is trivially zero.
MODERATE = 100.0

# Built once: a strategy built inside a draw is validated again at every draw, which
# costs more than the draw itself. So each case builder builds its strategy of ``x``
# when called, and the composites below only draw from it.
_SCALES = st.just(1.0) | st.floats(-1e3, 1e3, allow_nan=False)
_SCALES_32 = st.just(1.0) | st.floats(-1e3, 1e3, allow_nan=False, width=32)
_POWERS = st.sampled_from((1.0, -1.0, 2.0, -2.0, 0.5, -0.5, 4.0))

Arrays = SearchStrategy[NDArray[Any]]


def forward_case(
    dtype: np.dtype[Any], shape: Shapes, max_magnitude: float | None = None
) -> SearchStrategy[Case]:
    """``x``: logits of any magnitude up to the dtype's max, and an upstream ``dout``."""
    return _x_and_dout(sv_st.logits(dtype, shape=shape, max_magnitude=max_magnitude), dtype)


def logits_case(dtype: np.dtype[Any], shape: Shapes) -> SearchStrategy[Case]:
    """``x`` alone: logits of any magnitude up to the dtype's max."""
    return sv_st.logits(dtype, shape=shape).map(lambda x: {"x": x})


def shift_case(dtype: np.dtype[Any], shape: Shapes) -> SearchStrategy[Case]:
    """``x`` with ``|x| <= 1e4`` and per-row shifts ``c`` with ``|c| <= 1e4``."""
    return _x_and_shift(sv_st.logits(dtype, shape=shape, max_magnitude=1e4), dtype)


def permutation_case(dtype: np.dtype[Any], shape: Shapes) -> SearchStrategy[Case]:
    """``x`` and a permutation ``perm`` of its columns."""
    return _x_and_perm(sv_st.logits(dtype, shape=shape))


def backward_case(
    dtype: np.dtype[Any], shape: Shapes, well_conditioned: bool = False
) -> SearchStrategy[Case]:
    """``x`` (well conditioned for finite differences, else moderate) and ``dout``."""
    if well_conditioned:
        xs = sv_st.well_conditioned_logits(dtype, shape=shape)
    else:
        xs = sv_st.logits(dtype, shape=shape, max_magnitude=MODERATE)
    return _x_and_dout(xs, dtype)


def ones_case(dtype: np.dtype[Any], shape: Shapes) -> SearchStrategy[Case]:
    """``x`` of any magnitude and ``dout = c * ones`` (c = 1 first, then any |c| <= 1e3)."""
    return _x_and_ones(sv_st.logits(dtype, shape=shape), dtype)


def pair_case(dtype: np.dtype[Any], shape: Shapes) -> SearchStrategy[Case]:
    """``x`` (moderate), two upstreams ``u`` and ``v``, and power-of-two scalars ``a``, ``b``.

    Powers of two make ``a * u`` and ``b * v`` exact, so the only rounding in
    ``a * u + b * v`` is the addition, which the checks account for exactly.
    """
    return _x_and_pair(sv_st.logits(dtype, shape=shape, max_magnitude=MODERATE), dtype)


def stage_case(dtype: np.dtype[Any], shape: Shapes) -> SearchStrategy[Case]:
    """``x`` with ``|x| <= 30`` and ``dout``.

    Stage checks read the implementation's own cache; 30 keeps even an unshifted
    ``exp(x)`` and its squared row sum finite in float32, so a stage is judged on
    its formula, not on an overflow already reported by finite_for_finite_input.
    """
    return _x_and_dout(sv_st.logits(dtype, shape=shape, max_magnitude=30.0), dtype)


@st.composite
def _x_and_dout(draw: st.DrawFn, xs: Arrays, dtype: np.dtype[Any]) -> Case:
    x = draw(xs, label="x")
    return {"x": x, "dout": draw(sv_st.upstreams(x.shape, dtype), label="dout")}


@st.composite
def _x_and_shift(draw: st.DrawFn, xs: Arrays, dtype: np.dtype[Any]) -> Case:
    x = draw(xs, label="x")
    shift = draw(sv_st.shifts(x.shape[0], dtype, max_magnitude=1e4), label="shift")
    return {"x": x, "shift": shift}


@st.composite
def _x_and_perm(draw: st.DrawFn, xs: Arrays) -> Case:
    x = draw(xs, label="x")
    return {"x": x, "perm": draw(sv_st.permutations(x.shape[1]), label="perm")}


@st.composite
def _x_and_ones(draw: st.DrawFn, xs: Arrays, dtype: np.dtype[Any]) -> Case:
    x = draw(xs, label="x")
    scale = draw(_SCALES_32 if dtype.itemsize == 4 else _SCALES, label="c")
    return {"x": x, "dout": np.full(x.shape, scale, dtype=dtype)}


@st.composite
def _x_and_pair(draw: st.DrawFn, xs: Arrays, dtype: np.dtype[Any]) -> Case:
    x = draw(xs, label="x")
    u = draw(sv_st.upstreams(x.shape, dtype), label="u")
    v = draw(sv_st.upstreams(x.shape, dtype), label="v")
    a = draw(_POWERS, label="a")
    b = draw(_POWERS, label="b")
    return {"x": x, "u": u, "v": v, "a": np.array(a, dtype=dtype), "b": np.array(b, dtype=dtype)}


def _half_range(dtype: np.dtype[Any]) -> float:
    """Half the dtype's max: every log_softmax output ``>= -max - ln D`` is then finite."""
    return float(finfo(dtype).max) / 2


def half_range_logits_case(dtype: np.dtype[Any], shape: Shapes) -> SearchStrategy[Case]:
    """``x`` alone, with ``|x| <= max / 2`` (log_softmax's forward checks)."""
    x = sv_st.logits(dtype, shape=shape, max_magnitude=_half_range(dtype))
    return x.map(lambda x: {"x": x})


def half_range_forward_case(dtype: np.dtype[Any], shape: Shapes) -> SearchStrategy[Case]:
    """``x`` with ``|x| <= max / 2`` and an upstream ``dout``."""
    return forward_case(dtype, shape, max_magnitude=_half_range(dtype))


def half_range_permutation_case(dtype: np.dtype[Any], shape: Shapes) -> SearchStrategy[Case]:
    """``x`` with ``|x| <= max / 2`` and a permutation ``perm`` of its columns."""
    return _x_and_perm(sv_st.logits(dtype, shape=shape, max_magnitude=_half_range(dtype)))


def masked_case(dtype: np.dtype[Any], shape: Shapes) -> SearchStrategy[Case]:
    """``x`` with masked (-inf) entries, fully masked rows included, and ``dout``."""
    return _x_and_dout(sv_st.masked_logits(dtype, shape=shape), dtype)


def masked_log_case(dtype: np.dtype[Any], shape: Shapes) -> SearchStrategy[Case]:
    """``x`` with masked (-inf) entries, fully masked rows included, and ``dout`` that is
    0 at the masked entries: an upstream at a -inf log-probability has no meaning, and
    the two right ways to treat one differ (softmax_verify.invariants._log_masked)."""
    return _x_and_dout(sv_st.masked_logits(dtype, shape=shape), dtype).map(_zero_where_masked)


def _zero_where_masked(case: Case) -> Case:
    x, dout = case["x"], case["dout"]
    return {"x": x, "dout": np.where(np.isneginf(x), np.zeros((), dout.dtype), dout)}
