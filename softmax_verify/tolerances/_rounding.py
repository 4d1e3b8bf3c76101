r"""Rounding-error constants: the unit roundoff, :math:`\gamma_n`, the accumulation model of
half precision (``chain``), the underflow allowance, and a check's own float64 dot products.

The model and its notation: the package docstring (``softmax_verify.tolerances``). The model
is an argument (``accumulate``) of every function that depends on it, passed down from the
run's ``Options.accumulate``: no ambient state."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import DTypeLike, NDArray

from softmax_verify.core.dtypes import finfo, is_half
from softmax_verify.core.options import ACCUMULATIONS, Accumulation
from softmax_verify.core.validate import resolve_dtype
from softmax_verify.tolerances._probabilistic import false_alarm_probability, gamma_tilde

__all__ = [
    "ACCUMULATIONS",
    "VACUOUS",
    "chain",
    "describe_accumulation",
    "dot_rounding",
    "gamma",
    "is_probabilistic",
    "unit_roundoff",
]


Float64Array = NDArray[np.float64]

#: A relative bound standing for "no bound": where the model's bound reaches 1/2 or more,
#: nothing below 1 can be claimed. Finite (2**100), so that times an exact 0 it is 0,
#: and times any probability or upstream it stays finite and accepts every value.
VACUOUS = 2.0**100
#: Where :math:`t_i \ge 746`, :math:`y_i \le e^{-746}` is below float64's smallest
#: subnormal: the float64 reference is exactly 0 there, and so is :math:`\eta_i y_i`.
_NEGLIGIBLE_GAP = 746.0


def describe_accumulation(model: str) -> str:
    """The model in words, for a report header."""
    if model == "input":
        chance = false_alarm_probability(unit_roundoff(np.float16))
        return (
            "the input dtype, independent rounding errors (--accumulate input: a false alarm "
            f"on a correct kernel has a chance below {chance:.0e} per ci run)"
        )
    if model == "input-worst-case":
        return "the input dtype, worst case (--accumulate input-worst-case)"
    return "float32 or wider, rounded once to the output dtype (--accumulate float32)"


def unit_roundoff(dtype: DTypeLike) -> float:
    """``u = eps / 2`` of ``dtype``: the largest relative error of one rounding."""
    return float(finfo(resolve_dtype(dtype)).eps) / 2


def _model(dtype: DTypeLike, accumulate: Accumulation) -> tuple[float, float]:
    """``(u_acc, u_out)``: the unit roundoff of the accumulation, and that of the one final
    rounding to the output dtype when it is a separate step (else 0), under the
    ``accumulate`` model (``ACCUMULATIONS``; ValueError for any other).

    float32/float64, and half under ``"input"`` and ``"input-worst-case"``: ``(u, 0)``.
    Half under ``"float32"``: ``(2**-24, u_h)``.
    """
    if accumulate not in ACCUMULATIONS:
        raise ValueError(
            f"accumulate must be one of {', '.join(ACCUMULATIONS)}; got {accumulate!r}"
        )
    resolved = resolve_dtype(dtype)
    u = unit_roundoff(resolved)
    if is_half(resolved) and accumulate == "float32":
        return unit_roundoff(np.float32), u
    return u, 0.0


def is_probabilistic(dtype: DTypeLike, accumulate: Accumulation) -> bool:
    """Whether ``dtype`` is judged by the probabilistic bounds (``_probabilistic``): a half
    dtype under the ``"input"`` model."""
    _model(dtype, accumulate)  # validates the model
    return accumulate == "input" and is_half(resolve_dtype(dtype))


def chain(
    n: float | Float64Array, dtype: DTypeLike, accumulate: Accumulation, *, terms: int = 0
) -> Float64Array:
    r"""Relative error bound of n chained roundings for ``dtype`` under the ``accumulate`` model.

    :math:`u_{out} + (1 + u_{out})\gamma^{acc}_n` (``_model``): :math:`\gamma_n` itself for
    float32 and float64. ``VACUOUS`` where :math:`n u_{acc} \ge 1/2` (no useful bound).

    ``terms``: how many of the n roundings are those of one sum or inner product of ``terms``
    terms (its additions and products, on the path of any one term). Under the probabilistic
    model (``is_probabilistic``) they are bounded by Higham and Mary's :math:`\tilde\gamma`
    (``_probabilistic.gamma_tilde``) and the rest worst case:
    :math:`(1 + \tilde\gamma_s)(1 + \gamma_{n - s}) - 1`, s = min(terms, n); ``VACUOUS``
    where that reaches 1/2. The other models ignore it.
    """
    u_acc, u_out = _model(dtype, accumulate)
    if is_probabilistic(dtype, accumulate) and terms:
        nn = np.asarray(n, dtype=np.float64)
        summed = np.minimum(float(terms), nn)
        with np.errstate(over="ignore", invalid="ignore"):
            bound = (1 + gamma_tilde(summed, u_acc)) * (1 + gamma(nn - summed, dtype)) - 1
        vacuous: Float64Array = np.where(bound < 0.5, bound, VACUOUS)
        return vacuous
    nu = np.asarray(n, dtype=np.float64) * u_acc
    g = np.where(nu < 0.5, nu / np.maximum(1 - nu, 0.5), VACUOUS)
    out: Float64Array = np.minimum(u_out + (1 + u_out) * g, VACUOUS)
    return out


def gamma(n: float | Float64Array, dtype: DTypeLike) -> Float64Array:
    r""":math:`\gamma_n = n u / (1 - n u)`: the relative error bound of n chained roundings.

    Infinite where :math:`n u \ge 1` (no bound can be given there).
    """
    nu = np.asarray(n, dtype=np.float64) * unit_roundoff(dtype)
    with np.errstate(divide="ignore"):
        return np.where(nu < 1, nu / np.maximum(1 - nu, 0.0), np.inf)


def _tiny(dtype: DTypeLike, accumulate: Accumulation) -> float:
    r"""The absolute error allowed per rounding for underflow: :math:`\lambda`, the smallest
    normal number (a result flushed to zero, FTZ, errs by less).

    Under the ``"float32"`` half model the work is in float32, which may flush below
    float32's :math:`\lambda`, and only the final rounding is to the half dtype: that one
    keeps subnormals (IEEE gradual underflow, as numpy, ml_dtypes and CUDA's half
    conversions do), so it errs by at most half the half dtype's smallest subnormal
    :math:`\sigma_h`. The allowance is :math:`\lambda_{32} + \sigma_h`: about 6e-8 for
    float16, where its :math:`\lambda` of 6.1e-5 would hide a 50 % error in an entry
    of a 8192-wide row (each near 1.2e-4).

    Under the probabilistic ``"input"`` model the half dtype's own arithmetic keeps its
    subnormals too (numpy's float16, ml_dtypes, jax on CPU and CUDA's half arithmetic all
    do): a rounding errs by at most :math:`\sigma_h/2`, and the allowance is :math:`\sigma_h`.
    A kernel that flushes half subnormals to zero is judged by ``"input-worst-case"``, whose
    allowance stays the half dtype's :math:`\lambda`.
    """
    resolved = resolve_dtype(dtype)
    info = finfo(resolved)
    if _model(resolved, accumulate)[1]:
        return float(np.finfo(np.float32).smallest_normal) + float(info.smallest_subnormal)
    if is_probabilistic(resolved, accumulate):
        return float(info.smallest_subnormal)
    return float(info.smallest_normal)


def _smallest_normal(dtype: DTypeLike) -> float:
    return float(finfo(resolve_dtype(dtype)).smallest_normal)


def _subnormal(dtype: DTypeLike) -> float:
    return float(finfo(resolve_dtype(dtype)).smallest_subnormal)


def dot_rounding(d: int, abs_dot: NDArray[Any]) -> Float64Array:
    r"""Error of an inner product of length ``d`` taken in float64 by a check itself.

    :math:`\gamma_d \sum_i |a_i b_i|` (Higham) plus :math:`d\sigma` for products
    that land in the subnormal range, where rounding errors are absolute.
    """
    out: Float64Array = gamma(d, np.float64) * np.asarray(
        abs_dot, dtype=np.float64
    ) + d * _subnormal(np.float64)
    return out
