r"""log_softmax's bounds: the absolute forward bound :math:`a_i`, the VJP's :math:`\tau_i`, and
the whole-row checks (logsumexp of the output, entries at most 0)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import DTypeLike, NDArray

from softmax_verify.core.options import Accumulation
from softmax_verify.tolerances._forward import forward_relative_bound
from softmax_verify.tolerances._rounding import (
    Float64Array,
    _tiny,
    gamma,
    unit_roundoff,
)

__all__ = [
    "log_probability_slack",
    "log_softmax_backward_bound",
    "log_softmax_error_bound",
    "logsumexp_bound",
    "reference_log_softmax_backward_bound",
    "reference_log_softmax_bound",
]


def log_softmax_error_bound(
    x: NDArray[Any],
    z_exact: NDArray[Any],
    dtype: DTypeLike,
    *,
    moved: float = 0.0,
    accumulate: Accumulation = "float32",
) -> Float64Array:
    r"""Per-entry bound :math:`a_i` on ``|z_hat - z|`` for a correct log_softmax, absolute.

    :math:`z_i = (x_i - m) - \log s`, :math:`s = \sum_j e^{x_j - m} \in [1, D]`. With the
    same budget as the softmax forward: :math:`x_i - m` rounded once (error :math:`u t_i`);
    :math:`\hat s = s(1 + \theta)` with :math:`|\theta| \le \gamma_{D + 4 + \ln D}`
    (exp to 2 ulps, the shifted exponents' errors weighted by :math:`y_j`, whose
    :math:`\sum_j y_j t_j \le \ln D`, and D - 1 additions), so :math:`\log \hat s` is off
    by at most :math:`\gamma_{D + 5 + \ln D}`; log itself to 2 ulps (:math:`4u \ln D`); the
    final subtraction and a rounding to the output dtype (:math:`2u|z_i|`); D underflowing
    terms of the sum (:math:`D\lambda`, relative to :math:`s \ge 1`). Rounded up:

    .. math:: a_i = \gamma_{D + 10 + 5 \ln D} + u (t_i + 2 |z_i|)(1 + 4u) + D\lambda

    Absolute, not relative: at a large negative :math:`z_i` the relative error of a correct
    result is tiny but its absolute error grows with :math:`|z_i|`, and an underflow to
    -inf (``log(softmax(x))``) is an infinite absolute error. ``moved``: as for
    ``forward_relative_bound`` (:math:`t_i` and :math:`|z_i|` grow by at most 2 moved).
    ``accumulate``: the half-precision accumulation model (here it sets :math:`\lambda`).
    """
    x64 = np.asarray(x, dtype=np.float64)
    d = x64.shape[-1]
    u = unit_roundoff(dtype)
    with np.errstate(over="ignore", invalid="ignore"):
        t = x64.max(axis=-1, keepdims=True) - x64 + 2 * moved
        out: Float64Array = u * (1 + 4 * u) * (t + 2 * (np.abs(z_exact) + 2 * moved))
    out += gamma(d + 10 + 5 * math.log(d), dtype) + d * _tiny(dtype, accumulate)
    return out


def reference_log_softmax_bound(
    x: NDArray[Any],
    z_exact: NDArray[Any],
    dtype: DTypeLike,
    *,
    accumulate: Accumulation = "float32",
) -> Float64Array:
    """``log_softmax_error_bound`` plus the float64 reference's own bound (whose accumulation
    model is irrelevant: float64 has one)."""
    return log_softmax_error_bound(
        x, z_exact, dtype, accumulate=accumulate
    ) + log_softmax_error_bound(x, z_exact, np.float64)


def log_softmax_backward_bound(
    x: NDArray[Any],
    z_exact: NDArray[Any],
    dout: NDArray[Any],
    dtype: DTypeLike,
    *,
    accumulate: Accumulation = "float32",
) -> Float64Array:
    r"""Per-entry bound on ``|dx_hat - dx|`` for ``dx = g - y * sum(g)``, :math:`y = e^z`.

    The implementation gets :math:`\hat y_i = y_i(1 + \rho_i)` either as
    :math:`\exp(\hat z_i)` (:math:`|\rho_i| \le e^{a_i} - 1 + 4u`) or as a softmax
    (:math:`\eta_i`); :math:`\rho_i` is bounded by the sum of both. :math:`\hat S = \sum_j g_j`
    errs by :math:`\gamma_{D-1}\sum_j|g_j|`; the product, the subtraction and the output
    rounding add :math:`\gamma_3 (|g_i| + y_i \sum_j |g_j|)`. So, with
    :math:`G = \sum_j |g_j|`:

    .. math:: |\hat{dx}_i - dx_i| \le y_i G\,(\rho_i + \gamma_{D+3}(1 + \rho_i))
              + \gamma_3 |g_i| + \lambda (G + D + 4)

    (the :math:`\lambda` terms: probabilities that underflow or flush to zero, as in
    ``backward_error_bound``). ``accumulate``: the half-precision accumulation model.
    """
    x64 = np.asarray(x, dtype=np.float64)
    d = x64.shape[-1]
    y = np.exp(np.asarray(z_exact, dtype=np.float64))
    g = np.abs(np.asarray(dout, dtype=np.float64))
    total = g.sum(axis=-1, keepdims=True)
    a = np.minimum(log_softmax_error_bound(x64, z_exact, dtype, accumulate=accumulate), 700.0)
    eta = forward_relative_bound(x64, dtype, accumulate=accumulate)
    rho = np.expm1(a) + 4 * unit_roundoff(dtype) + eta
    with np.errstate(invalid="ignore"):
        spread = np.where(y > 0, y * total * (rho + gamma(d + 3, dtype) * (1 + rho)), 0.0)
    out: Float64Array = spread + gamma(3, dtype) * g + _tiny(dtype, accumulate) * (total + d + 4)
    return out


def reference_log_softmax_backward_bound(
    x: NDArray[Any],
    z_exact: NDArray[Any],
    dout: NDArray[Any],
    dtype: DTypeLike,
    *,
    accumulate: Accumulation = "float32",
) -> Float64Array:
    """``log_softmax_backward_bound`` plus the float64 reference VJP's own bound (whose
    accumulation model is irrelevant: float64 has one)."""
    return log_softmax_backward_bound(
        x, z_exact, dout, dtype, accumulate=accumulate
    ) + log_softmax_backward_bound(x, z_exact, dout, np.float64)


def logsumexp_bound(
    x: NDArray[Any],
    z_exact: NDArray[Any],
    dtype: DTypeLike,
    *,
    accumulate: Accumulation = "float32",
) -> Float64Array:
    r"""Per row, how far :math:`\log\sum_i e^{\hat z_i}` may be from 0 for a correct log_softmax.

    With :math:`\hat z_i = z_i + e_i`, :math:`|e_i| \le a_i` (``log_softmax_error_bound``):
    :math:`\log\sum_i y_i e^{e_i}` lies within :math:`b = \sum_i y_i (e^{a_i} - 1)` above and
    :math:`b / (1 - b)` below 0. Bound: :math:`b/(1-b)` (infinite where :math:`b \ge 1`)
    plus :math:`\gamma_{D+4}` in float64 for the logsumexp the check takes itself.
    ``accumulate``: the half-precision accumulation model of :math:`a_i`.
    """
    z = np.asarray(z_exact, dtype=np.float64)
    with np.errstate(all="ignore"):
        # At most 700: expm1 stays finite.
        a = np.minimum(log_softmax_error_bound(x, z, dtype, accumulate=accumulate), 700.0)
        b = np.where(z > -745, np.exp(z) * np.expm1(a), 0.0).sum(axis=-1)
        out: Float64Array = np.where(b < 1, b / (1 - b), np.inf) + gamma(
            z.shape[-1] + 4, np.float64
        )
    return out


def log_probability_slack(
    d: int, dtype: DTypeLike, *, accumulate: Accumulation = "float32"
) -> float:
    r"""How far above 0 a correct log-probability may round: :math:`\gamma_{D + 10 + 5\ln D}
    + D\lambda`, ``log_softmax_error_bound`` at :math:`t_i = z_i = 0` (the error allowed in
    :math:`\log \hat s`; :math:`\lambda` under the ``accumulate`` model)."""
    return float(gamma(d + 10 + 5 * math.log(d), dtype)) + d * _tiny(dtype, accumulate)
