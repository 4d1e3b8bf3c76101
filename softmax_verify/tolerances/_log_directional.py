r"""The tolerance of log_softmax's directional gradient check (``gradcheck``'s
``log_softmax_directional_check``), derived here.

log_softmax's Jacobian :math:`J = I - \mathbf 1 y^\top` is not symmetric, but
:math:`\operatorname{diag}(y) J = \operatorname{diag}(y) - y y^\top` is (it is softmax's
Jacobian: :math:`e^z` is a softmax). So for any u, :math:`J^\top (y \odot u) = y \odot (J u)`:
the backward at the y-weighted upstream :math:`g = y \odot u` must equal, entry by entry,
y times the forward's directional derivative along u, which two forward calls give. The
weights are the implementation's own: :math:`w = \operatorname{softmax}(\hat z(x))` from its
output at x (a constant offset in the output cancels), so that a forward and backward that
agree with each other pass whatever function they compute, as in the coordinate check.

With :math:`g = fl(w \odot u)` handed to the backward and
:math:`N_i = w_i (\hat z_i(x' + hu) - \hat z_i(x' - hu)) / 2h` (x' is x on the step grid,
as in ``directional_check``; :math:`\delta = \max_i |x'_i - x_i|` per row), a correct
implementation has :math:`|\hat B(g)_i - N_i|` at most the sum of:

- the backward's own bound :math:`\tau_i(g)` (``log_softmax_backward_bound``), taken at the
  largest :math:`|g|` a correct forward's weights give;
- the weights: :math:`w_i = y_i(1 + \rho_i)`. With :math:`\hat z = z + e`, :math:`|e_j| \le
  a_j` (``log_softmax_error_bound``) and :math:`b = \sum_j y_j (e^{a_j} - 1) < 1`,
  :math:`\sum_j y_j e^{e_j} \in [1 - b, 1 + b]`, so :math:`|\rho_i| \le e^{a_i}/(1 - b) - 1`,
  plus :math:`\gamma_{D+4}` of float64 for computing w. Then :math:`J^\top(w \odot u) - w
  \odot (J u) = y \odot (\rho\langle y, u\rangle - \langle y, \rho u\rangle)`: at most
  :math:`y_i(\rho_i P + Q)`, :math:`P = \sum_j y_j |u_j|`, :math:`Q = \sum_j y_j \rho_j |u_j|`;
- rounding g to the dtype: :math:`|g_j - w_j u_j| \le u|w_j u_j| + \sigma/2` (:math:`\sigma`
  the smallest subnormal), which moves :math:`J^\top g` by :math:`y_i(1 + \rho_i) u |u_i|
  + y_i u (1 + \rho) P`-sized terms, bounded by :math:`y_i[(1 + \rho_i) u |u_i| + u(P + Q)]
  + \sigma(1 + D y_i)/2`;
- the difference quotient against :math:`(J(x) u)_i`, times :math:`w_i \le y_i(1 + \rho_i)`:
  along u, :math:`z_i' = u_i - \langle y, u\rangle`, :math:`z_i'' = -\mathrm{Var}_y(u)`,
  :math:`z_i''' = -\kappa_3`, the third central moment of u under y, and for values in a
  range R, :math:`|\kappa_3| \le R \,\mathrm{Var} \le R^3/4`: truncation :math:`h^2 R^3 / 24`
  (the same for every i). Moving x to x' changes :math:`\langle y, u\rangle` by a covariance,
  :math:`|\mathrm{Cov}_y(u, x' - x)| \le (R/2)\delta`. The forward's absolute errors at both
  points, :math:`a_i` at points moved by at most :math:`h + \delta_{max}`, give
  :math:`a_i / h`; the float64 subtraction :math:`\gamma_1 (R + a_i/h)`, and the product
  :math:`w_i D_i` and the final comparison :math:`\gamma_2` of float64 on
  :math:`R + \epsilon_i`;
- underflow of w in float64: :math:`\lambda_{64}(D + 2 + R + \epsilon_i)`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import DTypeLike, NDArray

from softmax_verify.core.options import Accumulation
from softmax_verify.core.validate import resolve_dtype
from softmax_verify.tolerances._log_softmax import (
    log_softmax_backward_bound,
    log_softmax_error_bound,
)
from softmax_verify.tolerances._rounding import (
    VACUOUS,
    Float64Array,
    _smallest_normal,
    _subnormal,
    gamma,
    unit_roundoff,
)

__all__ = ["log_softmax_directional_bound", "log_softmax_weight_error"]


def log_softmax_weight_error(
    x: NDArray[Any],
    z_exact: NDArray[Any],
    dtype: DTypeLike,
    *,
    accumulate: Accumulation = "float32",
) -> Float64Array:
    r""":math:`\rho_i`: the relative error of :math:`w = \operatorname{softmax}(\hat z)` against
    the exact softmax y, for a correct log_softmax's output :math:`\hat z` at x (module
    docstring): :math:`e^{a_i}/(1 - b) - 1 + \gamma^{(64)}_{D+4}`; ``VACUOUS`` where
    :math:`b \ge 1`."""
    z = np.asarray(z_exact, dtype=np.float64)
    d = z.shape[-1]
    with np.errstate(all="ignore"):
        a = np.minimum(log_softmax_error_bound(x, z, dtype, accumulate=accumulate), 700.0)
        b = np.where(z > -745, np.exp(z) * np.expm1(a), 0.0).sum(axis=-1, keepdims=True)
        rho = np.where(b < 1, np.exp(a) / (1 - b) - 1, VACUOUS)
    out: Float64Array = np.minimum(rho + 2 * gamma(d + 4, np.float64), VACUOUS)
    return out


def log_softmax_directional_bound(
    x: NDArray[Any],
    z_exact: NDArray[Any],
    u: Float64Array,
    delta: Float64Array,
    h: float,
    dtype: DTypeLike,
    *,
    accumulate: Accumulation = "float32",
) -> Float64Array:
    r"""Per entry, the largest :math:`|\hat B(g)_i - N_i|` of a correct log_softmax forward and
    backward at x (module docstring), for the direction ``u`` (N, D) (entries of magnitude
    at most 1), ``delta`` :math:`\max_i |x'_i - x_i|` per row (N, 1), the step ``h``, and
    ``accumulate`` the half-precision accumulation model of the forward and backward bounds.
    """
    dt = resolve_dtype(dtype)
    x64 = np.asarray(x, dtype=np.float64)
    z = np.asarray(z_exact, dtype=np.float64)
    d = x64.shape[-1]
    y = np.exp(z)
    ug, sigma, lam64 = unit_roundoff(dt), _subnormal(dt), _smallest_normal(np.float64)
    rho = log_softmax_weight_error(x64, z, dt, accumulate=accumulate)
    abs_u = np.abs(u)
    spread = (u.max(axis=-1) - u.min(axis=-1))[:, None]  # R per row
    moved = h + float(delta.max(initial=0.0))
    a = log_softmax_error_bound(x64, z, dt, moved=moved, accumulate=accumulate)
    g1 = float(gamma(1, np.float64))
    # epsilon_i: truncation, the move to x', the forward at both points over 2h, the
    # float64 subtraction; then gamma_2 of float64 for w_i D_i and the comparison.
    eps = (h * h * spread**3 / 24 + spread * delta / 2 + g1 * spread) + (1 + g1) * a / h
    eps += float(gamma(2, np.float64)) * (spread + eps)
    p = (y * abs_u).sum(axis=-1, keepdims=True)
    q = (y * rho * abs_u).sum(axis=-1, keepdims=True)
    with np.errstate(over="ignore", invalid="ignore"):
        g_bound = y * (1 + rho) * abs_u * (1 + ug) + sigma / 2
        weights = (1 + rho) * (ug * abs_u + eps) + rho * p + q + ug * (p + q)
        tol: Float64Array = (
            log_softmax_backward_bound(x64, z, g_bound, dt, accumulate=accumulate) + y * weights
        )
    tol += sigma * (1 + d * y) / 2 + lam64 * (d + 2 + spread + eps)
    return np.minimum(np.nan_to_num(tol, nan=VACUOUS, posinf=VACUOUS), VACUOUS)
