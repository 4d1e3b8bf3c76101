r"""The softmax VJP's bound :math:`\tau` (``backward_error_bound``) and that of a stage of a
staged backward."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import DTypeLike, NDArray

from softmax_verify.core.options import Accumulation
from softmax_verify.tolerances._forward import forward_relative_bound
from softmax_verify.tolerances._rounding import (
    Float64Array,
    _smallest_normal,
    _tiny,
    chain,
)

__all__ = ["backward_error_bound", "reference_backward_bound", "stage_bound"]


def backward_error_bound(
    x: NDArray[Any],
    y_exact: NDArray[Any],
    dout: NDArray[Any],
    dtype: DTypeLike,
    *,
    accumulate: Accumulation = "float32",
) -> Float64Array:
    r"""Per-entry bound on ``|dx_hat - dx|`` for ``dx = y * (g - <g, y>)`` computed in ``dtype``.

    With the forward's errors :math:`\hat y_j = y_j(1 + \epsilon_j) + \alpha_j`,
    :math:`|\epsilon_j| \le \eta_j`, :math:`|\alpha_j| \le \lambda` (``forward_error_bound``),
    :math:`P = \sum_j |g_j| y_j` and :math:`Q = \sum_j |g_j| y_j \eta_j`, first-order error
    analysis of :math:`\hat y_i (g_i - \widehat{\langle g, \hat y\rangle})` gives

    .. math:: |\hat{dx}_i - dx_i| \le y_i\left[(\eta_i + \gamma_{D+4})(|g_i| + P) + Q\right]
              + \lambda\Big(m_i(|g_i| + P) + y_i \sum_j m_j |g_j|\Big) + (D + 4)\lambda

    (:math:`\gamma_{D+4}`: D-1 roundings in the inner product, the subtraction, the
    product, the output rounding, and two spare for an implementation that divides
    by the row sum on the way).

    The absolute terms cover underflow. The forward's absolute error :math:`\alpha_j`
    (a probability computed in the subnormal range, or flushed to zero) is an error of the
    backward's input: at entry i it is multiplied by :math:`g_i - \langle g, y\rangle`,
    at most :math:`|g_i| + P` (not :math:`\|g\|_\infty`: the two may add, as in
    ``g = (-43, -35, 60)``), and through the inner product it reaches every entry as
    :math:`y_i \sum_j g_j \alpha_j`. It is 0 unless the computed :math:`\hat y_j` is below
    the dtype's smallest normal :math:`\lambda_d`, which :math:`\hat y_j \ge y_j(1 - \eta_j)
    - \lambda` rules out where :math:`y_j(1 - \eta_j) \ge \lambda_d + \lambda`: so
    :math:`m_j` = 1 where :math:`y_j(1 - \eta_j) < \lambda_d + \lambda`, else 0 (every
    intermediate on the path to :math:`\hat y_j`, :math:`\hat e_j \ge \hat y_j` as
    :math:`\hat s \ge 1`, is then normal too). :math:`(D + 4)\lambda` covers the backward's own D
    + 4 roundings landing below the normal range. There an IEEE rounding errs by at most
    half a subnormal spacing, but implementations that flush subnormals to zero (XLA on
    CPU, CUDA's fast-math, ``-ffast-math`` builds: FTZ/DAZ) may turn any operand or result
    below :math:`\lambda` into 0, an absolute error below :math:`\lambda` each. Both are
    correct implementations of softmax, so the bound allows the larger; under the
    probabilistic ``"input"`` model, which keeps half subnormals, :math:`\lambda = \sigma_h`
    (``_tiny``), twice the :math:`\sigma_h/2` of each of the forward's two roundings that
    may land there (the exp and the division). ``accumulate``: the half-precision
    accumulation model.
    """
    x64 = np.asarray(x, dtype=np.float64)
    y64 = np.abs(np.asarray(y_exact, dtype=np.float64))
    g = np.abs(np.asarray(dout, dtype=np.float64))
    eta = forward_relative_bound(x64, dtype, accumulate=accumulate)
    return _backward_bound(y64, g, eta, dtype, accumulate=accumulate)


def _backward_bound(
    y: Float64Array,
    g: Float64Array,
    eta: Float64Array,
    dtype: DTypeLike,
    *,
    accumulate: Accumulation = "float32",
) -> Float64Array:
    r"""``backward_error_bound`` from ``|y|``, ``|dout|`` and :math:`\eta` (float64, (N, D)).

    For callers that evaluate it many times on one x (the gradient checks): :math:`\eta`
    is computed once, and any upper bound on it gives an upper bound here.
    """
    d = y.shape[-1]
    p = np.einsum("...i,...i->...", g, y)[..., None]
    gy = g * y
    q = np.einsum("...i,...i->...", gy, eta)[..., None]
    result: Float64Array = eta + chain(d + 4, dtype, accumulate, terms=d)
    result *= g + p
    result += q
    result *= y
    tiny = _tiny(dtype, accumulate)
    result += tiny * _underflow_weight(y, g, p, eta, dtype, tiny) + (d + 4) * tiny
    return result


def _underflow_weight(
    y: Float64Array,
    g: Float64Array,
    p: Float64Array,
    eta: Float64Array,
    dtype: DTypeLike,
    tiny: float,
) -> Float64Array:
    r""":math:`m_i(|g_i| + P) + y_i \sum_j m_j |g_j|`: what multiplies the forward's absolute
    error :math:`\lambda` in ``backward_error_bound``, :math:`m_j` = 1 where the computed
    probability may be subnormal (:math:`y_j(1 - \eta_j) < \lambda_d + \lambda`)."""
    with np.errstate(invalid="ignore"):
        low = y * (1 - np.minimum(eta, 1.0)) < _smallest_normal(dtype) + tiny
    g_low = np.where(low, g, 0.0)
    out: Float64Array = np.where(low, g + p, 0.0) + y * g_low.sum(axis=-1, keepdims=True)
    return out


def reference_backward_bound(
    x: NDArray[Any],
    y_exact: NDArray[Any],
    dout: NDArray[Any],
    dtype: DTypeLike,
    *,
    accumulate: Accumulation = "float32",
) -> Float64Array:
    """``backward_error_bound`` plus the float64 reference's own bound it is compared with
    (whose accumulation model is irrelevant: float64 has one)."""
    return backward_error_bound(
        x, y_exact, dout, dtype, accumulate=accumulate
    ) + backward_error_bound(x, y_exact, dout, np.float64)


def stage_bound(
    abs_formula: NDArray[Any], d: int, dtype: DTypeLike, *, accumulate: Accumulation = "float32"
) -> Float64Array:
    r"""Per-entry bound on a stage of the staged backward: :math:`(\gamma_{D+5} + \lambda)
    |F| + \lambda`.

    Each stage is a chain of at most D + 5 roundings (D - 1 in the row sum), so by Higham's
    standard result its error is at most :math:`\gamma_{D+5}` (``chain``) times the same
    formula evaluated on absolute values, ``abs_formula``; plus :math:`\lambda` times that
    and :math:`\lambda` for underflow (``chain`` and :math:`\lambda` under the
    ``accumulate`` model).
    """
    tiny = _tiny(dtype, accumulate)
    scale = np.asarray(abs_formula, dtype=np.float64)
    out: Float64Array = (chain(d + 5, dtype, accumulate, terms=d) + tiny) * scale + tiny
    return out
