r"""Finite differences: the step, the truncation of a central difference, the forward's bound
at both points, and the tolerances of the gradient checks built from them."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import DTypeLike, NDArray

from softmax_verify.core.options import Accumulation
from softmax_verify.tolerances._rounding import (
    Float64Array,
    _tiny,
    chain,
    gamma,
    unit_roundoff,
)

__all__ = [
    "LOGISTIC_SECOND",
    "LOGISTIC_THIRD",
    "LOG_SOFTMAX_SECOND",
    "LOG_SOFTMAX_THIRD",
    "central_difference_step",
    "difference_rounding",
    "difference_truncation",
    "directional_bound",
    "jacobian_backward_bound",
    "jacobian_difference_bound",
    "log_softmax_vjp_difference_bound",
    "projected_difference_bound",
    "vjp_difference_bound",
]


def central_difference_step(d: int, dtype: DTypeLike) -> float:
    r"""Step ``h`` for central differences on rows of length ``d``.

    The error of :math:`(L(x + h e_j) - L(x - h e_j)) / 2h` is at most
    :math:`h^2 R / 48` (truncation: :math:`|L'''| \le R/8` with R the range of the
    upstream, since along one coordinate softmax is a logistic function, whose third
    derivative is at most 1/8) plus about :math:`(D + 10) u P / h` (rounding of the
    forward). The sum is smallest near :math:`h = (24 (D + 10) u)^{1/3}`: the cube
    root of the unit roundoff, scaled by the row length. About 5e-5 for float64 and
    0.05 for float32 at D = 64.
    """
    return float((24 * (d + 10) * unit_roundoff(dtype)) ** (1 / 3))


#: max :math:`|\sigma''|` of the logistic function: :math:`\sigma(1 - \sigma)(1 - 2\sigma)`
#: peaks at :math:`1/(6\sqrt 3)`. Along one coordinate softmax is logistic.
LOGISTIC_SECOND = 1 / (6 * math.sqrt(3))
#: max :math:`|\sigma'''|`: :math:`\sigma(1-\sigma)(1 - 6\sigma(1-\sigma))` is -1/8 at 1/2.
LOGISTIC_THIRD = 1 / 8


def difference_truncation(
    up: NDArray[Any], down: NDArray[Any], *, second: float, third: float
) -> Float64Array:
    r"""Truncation error of :math:`(f(x + h_+) - f(x - h_-)) / (h_+ + h_-)` against
    :math:`f'(x)`: :math:`\max(h_\pm)^2 M_3/6 + |h_+ - h_-| M_2/2`.

    Taylor's theorem at both points, for f of one coordinate with :math:`|f''| \le M_2`
    (``second``) and :math:`|f'''| \le M_3` (``third``). Softmax along one coordinate is
    logistic (``LOGISTIC_SECOND``, ``LOGISTIC_THIRD``); for a weighted sum of outputs,
    multiply by the range of the weights.
    """
    up64, down64 = np.asarray(up, dtype=np.float64), np.asarray(down, dtype=np.float64)
    out: Float64Array = np.maximum(up64, down64) ** 2 * (third / 6)
    out += np.abs(up64 - down64) * (second / 2)
    return out


def difference_rounding(
    eta: Float64Array,
    y: Float64Array,
    largest: float,
    dtype: DTypeLike,
    *,
    accumulate: Accumulation = "float32",
) -> Float64Array:
    r""":math:`E^+_i + E^-_i`: the forward's bound at both points :math:`x \pm h_\pm e_j`,
    for every column j at once (N, D): :math:`2(e^{h} \eta_i y_i + \lambda)`.

    ``eta`` is ``forward_relative_bound(x, dtype, moved=largest, accumulate=accumulate)``
    (:math:`\lambda` is taken under the same ``accumulate`` model): at a point that moved
    one coordinate by :math:`s \le h` = ``largest``, :math:`\eta_i` is at most that, and
    the probability at most :math:`e^s y_i(x)` (along one coordinate :math:`|\partial \log
    y_i / \partial x_j| = |\delta_{ij} - y_j| \le 1`).
    """
    out: Float64Array = eta * y
    out *= 2 * math.exp(largest)
    out += 2 * _tiny(dtype, accumulate)
    return out


def vjp_difference_bound(
    truncation: Float64Array,
    g: Float64Array,
    rounding: Float64Array,
    spread: Float64Array,
    width: Float64Array,
) -> Float64Array:
    r"""Per entry (r, j), the error of the central-difference VJP
    :math:`\sum_i g_i \Delta_{ij} / (h_+ + h_-)` against :math:`(J^\top g)_j`:

    .. math:: T_{rj} R_r + \Big(\sum_i |g_i| (E_i^+ + E_i^-)
              + \gamma_{D+3} \sum_i |g_i| |\Delta_{ij}|\Big) / (h_+ + h_-)

    ``truncation`` :math:`T` (``difference_truncation``, logistic constants) times the range
    R of row r of g; ``rounding`` the row's :math:`\sum_i |g_i| (E_i^+ + E_i^-)` (N, 1);
    ``spread`` :math:`\sum_i |g_i||\Delta_{ij}|`; ``width`` :math:`h_+ + h_-`.
    :math:`\gamma_{D+3}`: the float64 estimate's own roundings (the subtraction
    :math:`\Delta_i`, the product, D - 1 additions, the width and the division). Add the
    backward's own bound for the full tolerance.
    """
    d = g.shape[-1]
    out: Float64Array = truncation * (g.max(axis=-1) - g.min(axis=-1))[:, None]
    out += (rounding + gamma(d + 3, np.float64) * spread) / width
    return out


def jacobian_difference_bound(
    numerical: Float64Array, width: Float64Array, rounding: Float64Array, truncation: Float64Array
) -> Float64Array:
    r"""The numerical part of a Jacobian entry's tolerance: :math:`T_{ij} + (E_i^+ +
    E_i^-)/(h_+ + h_-) + \gamma_3 |N_{ij}|`.

    ``numerical`` :math:`N` (c, N, D) for c columns j, ``width`` and ``truncation`` per
    column (c, N, 1), ``rounding`` :math:`E^+ + E^-` (N, D). :math:`\gamma_3`: the float64
    subtraction of the outputs, the width and the division.
    """
    out: Float64Array = rounding / width
    out += truncation
    out += gamma(3, np.float64) * np.abs(numerical)
    return out


def jacobian_backward_bound(
    y: Float64Array,
    eta: Float64Array,
    start: int,
    stop: int,
    dtype: DTypeLike,
    *,
    accumulate: Accumulation = "float32",
) -> Float64Array:
    r"""``backward_error_bound`` for the basis upstreams :math:`g = e_j`, j in
    ``start:stop``, laid out [j, r, i] (c, N, D): with :math:`P = y_j`, :math:`Q = y_j
    \eta_j`,

    .. math:: y_i (\eta_i + \gamma_{D+4})(\delta_{ij} + y_j) + y_i y_j \eta_j + (D + 5)\lambda

    ``eta`` may be any upper bound of :math:`\eta` (the gradient checks take it at the
    farthest perturbed point), under the same ``accumulate`` model as ``chain`` and
    :math:`\lambda` here.
    """
    d = y.shape[-1]
    cols = slice(start, stop)
    c = stop - start
    y_j = y[:, cols].T[:, :, None]
    scale = y_j * (eta[:, cols].T[:, :, None] + chain(d + 4, dtype, accumulate, terms=d))
    out: Float64Array = scale * y
    out += y_j * (y * eta)
    out[np.arange(c), :, np.arange(start, stop)] += scale[:, :, 0]  # delta_ij
    out += (d + 5) * _tiny(dtype, accumulate)
    return out


def projected_difference_bound(
    absg: Float64Array, part: Float64Array, numerical: Float64Array
) -> Float64Array:
    r"""Error of :math:`N^\top g` from numerical Jacobian columns (c, N, D) with per-entry
    bounds ``part``: :math:`\sum_i |g_i| T_{ij} + \gamma_D \sum_i |g_i| |N_{ij}|` (the
    float64 inner product), (N, c)."""
    d = absg.shape[-1]
    out: Float64Array = np.einsum("ri,kri->rk", absg, part)
    out += gamma(d, np.float64) * np.einsum("ri,kri->rk", absg, np.abs(numerical))
    return out


def log_softmax_vjp_difference_bound(
    truncation: Float64Array,
    g: Float64Array,
    rounding: Float64Array,
    spread: Float64Array,
    width: Float64Array,
) -> Float64Array:
    r"""As ``vjp_difference_bound`` for log_softmax: along :math:`x_j`, :math:`L'' = -S\sigma'`
    and :math:`L''' = -S\sigma''` with :math:`S = \sum_i g_i`, so ``truncation`` (taken
    with ``LOG_SOFTMAX_SECOND``, ``LOG_SOFTMAX_THIRD``) is multiplied by :math:`|S|`;
    ``rounding`` is :math:`2\sum_i |g_i| a_i` (N, 1), the forward's absolute bound at
    both points."""
    d = g.shape[-1]
    out: Float64Array = truncation * np.abs(g.sum(axis=-1, keepdims=True))
    out += (rounding + gamma(d + 3, np.float64) * spread) / width
    return out


#: Along one coordinate :math:`\partial z_i / \partial x_j = \delta_{ij} - \sigma`, with
#: :math:`\sigma` the logistic function of :math:`x_j`: so :math:`|z''| = \sigma' \le 1/4`
#: and :math:`|z'''| = |\sigma''| \le 1/(6\sqrt 3)`, the same for every i.
LOG_SOFTMAX_SECOND = 0.25
LOG_SOFTMAX_THIRD = 1 / (6 * math.sqrt(3))


def directional_bound(
    y: Float64Array,
    y_eta: Float64Array,
    g: Float64Array,
    spread: Float64Array,
    delta: Float64Array,
    h: float,
    dtype: DTypeLike,
    *,
    overwrite_y: bool = False,
    accumulate: Accumulation = "float32",
) -> Float64Array:
    r"""Per entry, the error of :math:`(f(x' + hu) - f(x' - hu)) / 2h` against ``backward(u)``
    at x, for a correct forward and backward.

    ``y`` the exact softmax at x and ``y_eta`` :math:`y_i\eta_i` with :math:`\eta` at x moved
    as far as :math:`x' \pm hu` (``_eta_times``); ``g`` :math:`|u|` (overwritten); per row
    (N,): ``spread`` R, the range of u, and ``delta`` :math:`\delta = \max_i |x'_i - x_i|`
    (x' is x rounded to the step grid). With :math:`G = e^{hR + 2\delta}`:

    - :math:`y_i(x') \le e^{2\delta} y_i(x)` and, along u, :math:`y_i(x' + t u) \le e^{|t|
      R} y_i(x')`, so :math:`y_i \le G y_i(x)` on the whole segment;
    - truncation: :math:`|y_i'''| \le 2.75 R^3 y_i(\xi)` along u (cumulant expansion of
      :math:`\log y_i`), so :math:`h^2 \cdot 2.75 R^3 G y_i / 6`;
    - rounding: :math:`(E_i^+ + E_i^-)/2h \le (\eta_i G y_i + \lambda)/h`;
    - the float64 subtraction of the two outputs: :math:`\gamma_1` times their difference,
      at most :math:`2hRGy_i + E_i^+ + E_i^-` for a correct forward, so :math:`\gamma_1 R G
      y_i` and the rounding term times :math:`1 + \gamma_1` (dividing by 2h is exact);
    - moving from x to x': :math:`|(J(x') u)_i - (J(x) u)_i| \le 4 R \delta e^{2\delta}
      y_i(x)` (the derivative of :math:`y_i (u_i - \bar u)` along :math:`x' - x` is at most
      :math:`4 R \delta y_i`);
    - the backward bound at x for g = u with the same :math:`\eta` (an upper bound):
      :math:`y_i[(\eta_i + \gamma_{D+4})(|u_i| + P) + Q] + \lambda\|u\|_\infty + (D+4)\lambda`,
      :math:`\|u\|_\infty \le 1`.

    ``overwrite_y``: ``y`` is not read again by the caller and may hold a temporary.
    ``accumulate``: the half-precision accumulation model, that of ``y_eta`` too.
    """
    d = y.shape[-1]
    tiny = _tiny(dtype, accumulate)
    subtraction = float(gamma(1, np.float64))  # fl(out+ - out-) in float64
    backward_gamma = float(chain(d + 4, dtype, accumulate, terms=d))
    rounding = (1 + subtraction) / h  # the forward's bounds at both points, over 2h
    grow = np.exp(h * spread + 2 * delta)  # G
    p = np.einsum("ri,ri->r", g, y)
    q = np.einsum("ri,ri->r", g, y_eta)
    # tol = y [G h^2 2.75 R^3 / 6 + gamma_1 R G + 4 R delta e^{2 delta} + gamma p + q]
    #     + y eta [(1 + gamma_1) G / h + p] + y (eta + gamma) |u| + constants.
    on_y = grow * h**2 * (2.75 / 6) * spread**3 + backward_gamma * p + q
    on_y += spread * grow * subtraction
    on_y += 4 * spread * delta * np.exp(2 * delta)
    tol: Float64Array = y * on_y[:, None]
    tol += y_eta * (grow * rounding + p)[:, None]
    weight = np.multiply(y, backward_gamma, out=y if overwrite_y else None)
    weight += y_eta  # y (eta + gamma_{D+4})
    tol += np.multiply(weight, g, out=g)
    tol += tiny * rounding + (d + 5) * tiny
    return tol
