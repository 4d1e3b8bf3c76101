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

from softmax_verify import strategies as sv_st
from softmax_verify._dtypes import finfo

__all__ = ["Case", "Shapes", "backward_case", "forward_case", "pair_case", "shift_case"]

Case = dict[str, NDArray[Any]]
Shapes = SearchStrategy[tuple[int, int]]

#: Logit magnitude for properties that need a non-degenerate Jacobian: beyond
#: about 750 every float64 row is one-hot and every backward is trivially zero.
MODERATE = 100.0

# Built once: a strategy built inside a draw is validated again at every draw.
_SCALES = st.just(1.0) | st.floats(-1e3, 1e3, allow_nan=False)
_SCALES_32 = st.just(1.0) | st.floats(-1e3, 1e3, allow_nan=False, width=32)
_POWERS = st.sampled_from((1.0, -1.0, 2.0, -2.0, 0.5, -0.5, 4.0))


@st.composite
def forward_case(
    draw: st.DrawFn, dtype: np.dtype[Any], shape: Shapes, max_magnitude: float | None = None
) -> Case:
    """``x``: logits of any magnitude up to the dtype's max, and an upstream ``dout``."""
    x = draw(sv_st.logits(dtype, shape=shape, max_magnitude=max_magnitude), label="x")
    dout = draw(sv_st.upstreams(x.shape, dtype), label="dout")
    return {"x": x, "dout": dout}


def logits_case(dtype: np.dtype[Any], shape: Shapes) -> SearchStrategy[Case]:
    """``x`` alone: logits of any magnitude up to the dtype's max."""
    return sv_st.logits(dtype, shape=shape).map(lambda x: {"x": x})


@st.composite
def shift_case(draw: st.DrawFn, dtype: np.dtype[Any], shape: Shapes) -> Case:
    """``x`` with ``|x| <= 1e4`` and per-row shifts ``c`` with ``|c| <= 1e4``."""
    x = draw(sv_st.logits(dtype, shape=shape, max_magnitude=1e4), label="x")
    shift = draw(sv_st.shifts(x.shape[0], dtype, max_magnitude=1e4), label="shift")
    return {"x": x, "shift": shift}


@st.composite
def permutation_case(draw: st.DrawFn, dtype: np.dtype[Any], shape: Shapes) -> Case:
    """``x`` and a permutation ``perm`` of its columns."""
    x = draw(sv_st.logits(dtype, shape=shape), label="x")
    perm = draw(sv_st.permutations(x.shape[1]), label="perm")
    return {"x": x, "perm": perm}


@st.composite
def backward_case(
    draw: st.DrawFn, dtype: np.dtype[Any], shape: Shapes, well_conditioned: bool = False
) -> Case:
    """``x`` (well conditioned for finite differences, else moderate) and ``dout``."""
    if well_conditioned:
        x = draw(sv_st.well_conditioned_logits(dtype, shape=shape), label="x")
    else:
        x = draw(sv_st.logits(dtype, shape=shape, max_magnitude=MODERATE), label="x")
    dout = draw(sv_st.upstreams(x.shape, dtype), label="dout")
    return {"x": x, "dout": dout}


@st.composite
def ones_case(draw: st.DrawFn, dtype: np.dtype[Any], shape: Shapes) -> Case:
    """``x`` of any magnitude and ``dout = c * ones`` (c = 1 first, then any |c| <= 1e3)."""
    x = draw(sv_st.logits(dtype, shape=shape), label="x")
    scale = draw(_SCALES_32 if dtype.itemsize == 4 else _SCALES, label="c")
    return {"x": x, "dout": np.full(x.shape, scale, dtype=dtype)}


@st.composite
def pair_case(draw: st.DrawFn, dtype: np.dtype[Any], shape: Shapes) -> Case:
    """``x`` (moderate), two upstreams ``u`` and ``v``, and power-of-two scalars ``a``, ``b``.

    Powers of two make ``a * u`` and ``b * v`` exact, so the only rounding in
    ``a * u + b * v`` is the addition, which the checks account for exactly.
    """
    x = draw(sv_st.logits(dtype, shape=shape, max_magnitude=MODERATE), label="x")
    u = draw(sv_st.upstreams(x.shape, dtype), label="u")
    v = draw(sv_st.upstreams(x.shape, dtype), label="v")
    a = draw(_POWERS, label="a")
    b = draw(_POWERS, label="b")
    return {"x": x, "u": u, "v": v, "a": np.array(a, dtype=dtype), "b": np.array(b, dtype=dtype)}


@st.composite
def stage_case(draw: st.DrawFn, dtype: np.dtype[Any], shape: Shapes) -> Case:
    """``x`` with ``|x| <= 30`` and ``dout``.

    Stage checks read the implementation's own cache; 30 keeps even an unshifted
    ``exp(x)`` and its squared row sum finite in float32, so a stage is judged on
    its formula, not on an overflow already reported by finite_for_finite_input.
    """
    x = draw(sv_st.logits(dtype, shape=shape, max_magnitude=30.0), label="x")
    dout = draw(sv_st.upstreams(x.shape, dtype), label="dout")
    return {"x": x, "dout": dout}


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


@st.composite
def half_range_permutation_case(draw: st.DrawFn, dtype: np.dtype[Any], shape: Shapes) -> Case:
    """``x`` with ``|x| <= max / 2`` and a permutation ``perm`` of its columns."""
    x = draw(sv_st.logits(dtype, shape=shape, max_magnitude=_half_range(dtype)), label="x")
    perm = draw(sv_st.permutations(x.shape[1]), label="perm")
    return {"x": x, "perm": perm}


@st.composite
def masked_case(draw: st.DrawFn, dtype: np.dtype[Any], shape: Shapes) -> Case:
    """``x`` with masked (-inf) entries, fully masked rows included, and ``dout``."""
    x = draw(sv_st.masked_logits(dtype, shape=shape), label="x")
    dout = draw(sv_st.upstreams(x.shape, dtype), label="dout")
    return {"x": x, "dout": dout}


@st.composite
def masked_log_case(draw: st.DrawFn, dtype: np.dtype[Any], shape: Shapes) -> Case:
    """``x`` with masked (-inf) entries, fully masked rows included, and ``dout`` that is
    0 at the masked entries: an upstream at a -inf log-probability has no meaning, and
    the two right ways to treat one differ (softmax_verify.invariants._log_masked)."""
    x = draw(sv_st.masked_logits(dtype, shape=shape), label="x")
    dout = draw(sv_st.upstreams(x.shape, dtype), label="dout")
    return {"x": x, "dout": np.where(np.isneginf(x), np.zeros((), dtype), dout)}
