r"""The softmax forward's bound :math:`\eta_i y_i + \lambda` (derived in the package docstring
and docs/tolerances.md) and the invariants sized from it alone: the row sum and the unit
interval."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import DTypeLike, NDArray

from softmax_verify.core.options import Accumulation
from softmax_verify.tolerances._rounding import (
    _NEGLIGIBLE_GAP,
    VACUOUS,
    Float64Array,
    _model,
    _tiny,
    chain,
    gamma,
    is_probabilistic,
    unit_roundoff,
)

__all__ = [
    "forward_error_bound",
    "forward_relative_bound",
    "reference_forward_bound",
    "row_sum_bound",
    "sum_relative_error",
    "unit_interval_slack",
]


_EPS64 = float(np.finfo(np.float64).eps)


def forward_relative_bound(
    x: NDArray[Any], dtype: DTypeLike, *, moved: float = 0.0, accumulate: Accumulation = "float32"
) -> Float64Array:
    r"""Per-entry :math:`\eta_i = \gamma_{D + 10 + \ln D + t_i}` for (N, D) logits ``x``.

    ``moved`` (>= 0): the bound is wanted at every x' with :math:`|x'_j - x_j| \le`
    ``moved`` too (a perturbed point of a finite difference). There
    :math:`t'_i = \max_j x'_j - x'_i \le t_i + 2\,moved`, and :math:`\gamma` grows with
    its argument, so :math:`t_i` is enlarged by ``2 * moved``. ``accumulate``: the
    half-precision accumulation model (the package docstring; float32 and float64 do not
    depend on it).

    Where :math:`(D + 10 + \ln D + t_i) u \ge 1/2` (so :math:`t_i \ge 2^{22} - D - 10 -
    \ln D` even in float32, and far more in float64) the exact probability is below
    :math:`e^{-t_i}`, about :math:`e^{-4\cdot 10^6}`, which is 0 in every dtype, so the error
    term :math:`\eta_i y_i` is 0 and those entries get :math:`\eta_i = 0`; only the
    absolute :math:`\lambda` remains.

    Under the probabilistic model (half precision, ``"input"``: ``sum_relative_error``) the
    row sum's D - 1 additions are bounded by Higham and Mary's :math:`\tilde\gamma_{D-1}`
    and the other roundings worst case: :math:`\eta_i = (\gamma_{7 + t_i} + \Phi) / (1 -
    \Phi)`, where the numerator :math:`e^{x_i - m}` errs by at most :math:`\gamma_{7 +
    t_i}` (exp 4u, the shift :math:`t_i u`, the division 2u, the output u) and the sum
    :math:`\hat s = s(1 + \phi)` by :math:`|\phi| \le \Phi`, so that :math:`\hat y_i /
    y_i \in [(1 - A_i)/(1 + \Phi), (1 + A_i)/(1 - \Phi)]`.
    """
    x64 = np.asarray(x, dtype=np.float64)
    d = x64.shape[-1]
    u, u_out = _model(dtype, accumulate)
    likely = is_probabilistic(dtype, accumulate)
    phi = sum_relative_error(d, dtype, accumulate=accumulate) if likely else 0.0
    with np.errstate(over="ignore", invalid="ignore"):
        # One owned buffer, in place: nu = (D + 10 + ln D + t) u, then nu / (1 - nu).
        nu: Float64Array = np.subtract(x64.max(axis=-1, keepdims=True), x64)
        # Where the bound fails (nu >= 1/2): no claim (VACUOUS), unless t is so large that
        # y_i is 0 even at a point moved by ``moved``; for inf and NaN t too.
        lost = np.where(nu < _NEGLIGIBLE_GAP + 2 * moved, VACUOUS, 0.0)
        nu += (7 if likely else d + 10 + math.log(d)) + 2 * moved
        nu *= u
        small = (nu < 0.5) & (phi < 0.5)
        np.divide(nu, 1 - nu, out=nu, where=small)
        if likely:  # (gamma_{7 + t} + Phi) / (1 - Phi)
            nu += phi
            nu /= 1 - phi
        if u_out:  # the half model's final rounding: eta = u_out + (1 + u_out) gamma
            nu *= 1 + u_out
            nu += u_out
    np.copyto(nu, lost, where=~small)
    return nu


def sum_relative_error(d: int, dtype: DTypeLike, *, accumulate: Accumulation = "float32") -> float:
    r""":math:`\Phi`: how far a correct forward's row sum :math:`\hat s = \sum_j fl(e^{x_j - m})`
    may be from the exact one, relative, under the probabilistic model (half precision,
    ``"input"``; 0 under the others, whose :math:`\eta` counts the sum's roundings itself).

    Each term :math:`e_j(1 + \epsilon_j)`, :math:`|\epsilon_j| \le 4u + t_j u` (exp and the
    shift), passes through at most D - 1 additions, :math:`\prod (1 + \delta_k) = 1 +
    \theta_j` with :math:`|\theta_j| \le \tilde\gamma_{D-1}` (``chain`` with ``terms``; all
    D terms at once with the probability of ``_probabilistic``). The terms are positive, so
    :math:`|\hat s / s - 1| \le (1 + \tilde\gamma_{D-1})(1 + \sum_j y_j |\epsilon_j|) - 1`,
    and :math:`\sum_j y_j t_j \le \ln D`: :math:`\Phi = (1 + \tilde\gamma_{D-1})(1 +
    \gamma_{4 + \ln D}) - 1`. ``VACUOUS`` where it reaches 1/2.
    """
    if not is_probabilistic(dtype, accumulate):
        return 0.0
    additions = chain(d - 1, dtype, accumulate, terms=d - 1) if d > 1 else 0.0
    phi = (1 + float(additions)) * (1 + float(gamma(4 + math.log(d), dtype))) - 1
    return phi if phi < 0.5 else VACUOUS


def _eta_times(
    x: NDArray[Any],
    y: Float64Array,
    dtype: DTypeLike,
    moved: float,
    *,
    accumulate: Accumulation = "float32",
) -> Float64Array:
    r""":math:`y_i \eta_i`, an upper bound of ``forward_relative_bound(x, dtype, moved=moved,
    accumulate=accumulate) * y`` for (N, D) x and y >= 0, in three passes instead of nine.

    Per row, with :math:`\nu_i = (K + m - x_i) u` (K = D + 10 + ln D + 2 moved, m the
    row's maximum) and :math:`\nu^* = \max_i \nu_i` (at the row's minimum): where
    :math:`\nu^* < 1/2`, :math:`\eta_i = \nu_i / (1 - \nu_i) \le \beta (K + m - x_i)`
    with :math:`\beta = u / (1 - \nu^*)`, larger by a factor at most
    :math:`(1 - \nu_i)/(1 - \nu^*) \le 1 + 2 \nu^*` (about :math:`1 + 10^{-12}` for
    ordinary rows), and by a margin of 8 eps for the float64 roundings. Rows with
    :math:`\nu^* \ge 1/2` (a logit some :math:`2^{22}` below its row's maximum in
    float32) take ``forward_relative_bound`` itself.

    Under the probabilistic model K is 7 + 2 moved and the result
    :math:`(\beta(K + m - x_i) + \Phi)/(1 - \Phi)` (``forward_relative_bound``).
    """
    x64 = np.asarray(x, dtype=np.float64)
    d = x64.shape[-1]
    u, u_out = _model(dtype, accumulate)
    likely = is_probabilistic(dtype, accumulate)
    phi = sum_relative_error(d, dtype, accumulate=accumulate)
    top = x64.max(axis=-1, keepdims=True)
    top += (7 if likely else d + 10 + math.log(d)) + 2 * moved  # K + m
    nu_max = (top - x64.min(axis=-1, keepdims=True)) * u
    with np.errstate(invalid="ignore", divide="ignore"):
        # The margin 1 + 8 eps covers the float64 roundings here and in the nine passes.
        beta = u * (1 + 8 * _EPS64) * (1 + u_out) / ((1 - nu_max) * (1 - phi))
    out: Float64Array = np.subtract(top, x64)
    out *= beta
    if u_out:  # the half model's final rounding: eta = u_out + (1 + u_out) gamma
        out += u_out
    if likely:
        out += phi * (1 + 8 * _EPS64) / (1 - phi)
    out *= y
    far = np.flatnonzero(~((nu_max[:, 0] < 0.5) & (phi < 0.5)))  # NaN too
    if far.size:
        out[far] = (
            forward_relative_bound(x64[far], dtype, moved=moved, accumulate=accumulate) * y[far]
        )
    return out


def forward_error_bound(
    x: NDArray[Any],
    y_exact: NDArray[Any],
    dtype: DTypeLike,
    *,
    accumulate: Accumulation = "float32",
) -> Float64Array:
    r"""Per-entry bound :math:`\eta_i y_i + \lambda` on ``|y_hat - y|`` for a correct forward
    (``accumulate``: the half-precision accumulation model)."""
    y64 = np.abs(np.asarray(y_exact, dtype=np.float64))
    return forward_relative_bound(x, dtype, accumulate=accumulate) * y64 + _tiny(dtype, accumulate)


def reference_forward_bound(
    x: NDArray[Any],
    y_exact: NDArray[Any],
    dtype: DTypeLike,
    *,
    accumulate: Accumulation = "float32",
) -> Float64Array:
    """``forward_error_bound`` plus the float64 reference's own bound it is compared with
    (whose accumulation model is irrelevant: float64 has one)."""
    return forward_error_bound(x, y_exact, dtype, accumulate=accumulate) + forward_error_bound(
        x, y_exact, np.float64
    )


def row_sum_bound(d: int, dtype: DTypeLike, *, accumulate: Accumulation = "float32") -> float:
    r"""Bound on :math:`|\sum_i \hat y_i - 1|` for a correct forward on rows of length ``d``.

    :math:`\sum_i (\eta_i y_i + \lambda) \le \gamma_{D + 10 + 2\ln D} + D\lambda`, using
    :math:`\sum_i y_i t_i \le \ln D`; plus :math:`\gamma_{D}` in float64 for the check's own
    sum (the check adds in float64). Under the probabilistic model (``sum_relative_error``
    :math:`\Phi`): :math:`\sum_i y_i (\gamma_{7 + t_i} + \Phi)/(1 - \Phi)`, where
    :math:`\gamma_{7 + t_i} \le 2(7 + t_i)u` wherever it is not vacuous (:math:`nu < 1/2`), so
    :math:`(2(7 + \ln D)u + \Phi)/(1 - \Phi)`.
    """
    phi = sum_relative_error(d, dtype, accumulate=accumulate)
    if is_probabilistic(dtype, accumulate):
        u = unit_roundoff(dtype)
        relative = (2 * (7 + math.log(d)) * u + phi) / (1 - phi) if phi < 0.5 else VACUOUS
    else:
        relative = float(chain(d + 10 + 2 * math.log(d), dtype, accumulate))
    return float(relative + d * _tiny(dtype, accumulate) + gamma(d, np.float64))


def unit_interval_slack(dtype: DTypeLike) -> float:
    r"""How far above 1 a correct probability may round: :math:`2u`.

    ``e_i / s`` with ``s >= e_i`` never exceeds 1 (rounding is monotone), but a
    reciprocal-and-multiply ``e_i * fl(1/s)`` rounds twice: :math:`(1+u)^2 < 1 + 2u + u^2`,
    which rounds to at most :math:`1 + 2u` (one ulp above 1). Below 0 is never allowed.
    """
    return 2 * unit_roundoff(dtype)
