r"""Error bounds that every tolerance in softmax-verify is computed from.

Notation (per row of length :math:`D`): :math:`u` is the unit roundoff of the
dtype under test (``eps / 2``: 2**-24 for float32, 2**-53 for float64),
:math:`\gamma_n = nu / (1 - nu)` (Higham's constant for n roundings),
:math:`\lambda` the dtype's smallest normal number, :math:`t_i = \max_j x_j - x_i`.
Exact values are computed in float64 by the reference; where the dtype under
test is float64 too, the reference's own bound is added (``reference_*``).

Assumed of any correct implementation (the *budget*; docs/tolerances.md has the
full derivation):

- ``exp`` within 2 ulps (relative error 4u), subtraction ``x_i - m`` rounded
  once (absolute error :math:`t_i u` in the exponent), a row sum of D terms in
  any order (:math:`\gamma_{D-1}`), a division or reciprocal-and-multiply (2u)
  and the final rounding to the output dtype (u).

Then each computed probability satisfies
:math:`|\hat y_i - y_i| \le \eta_i y_i + \lambda` with
:math:`\eta_i = \gamma_{D + 10 + \ln D + t_i}`: 4u (exp) + :math:`t_i u`
(shift) + the row sum's relative error :math:`\gamma_{D-1} + 4u + u \ln D`
(the :math:`\ln D` because :math:`\sum_j y_j t_j \le H(y) \le \ln D`) + 2u
(division) + u (output), rounded up. Everything else follows from this one
bound.

Half precision (float16, bfloat16; docs/tolerances.md, "Half precision") follows an
*accumulation model*, chosen with ``accumulation``:

- ``"float32"`` (the default): every step above runs in float32 or wider, on inputs
  that convert exactly, and only the result is rounded, once, to the half dtype:
  :math:`\eta_i = u_h + (1 + u_h)\gamma^{(32)}_{D + 10 + \ln D + t_i}`, with
  :math:`u_h` the half dtype's unit roundoff and :math:`\gamma^{(32)}` float32's. Any
  chain of n roundings becomes ``chain(n)`` :math:`= u_h + (1 + u_h)\gamma^{(32)}_n`,
  and :math:`\lambda` becomes :math:`\lambda_{32} + \sigma_h` (``_tiny``).
- ``"input"``: everything in the half dtype itself: the model above with :math:`u = u_h`.
  Where :math:`(D + 10 + \ln D + t_i) u \ge 1/2` the bound is vacuous and says so
  (``VACUOUS``): at float16 from D of about 1000 on, at bfloat16 from about 120.

For float32 and float64 both models are the one above (the accumulation dtype is the
input dtype).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import numpy as np
from numpy.typing import DTypeLike, NDArray

from softmax_verify._dtypes import finfo, is_half
from softmax_verify._validate import resolve_dtype

__all__ = [
    "ACCUMULATIONS",
    "VACUOUS",
    "accumulation",
    "backward_error_bound",
    "central_difference_step",
    "chain",
    "describe_accumulation",
    "dot_rounding",
    "forward_error_bound",
    "forward_relative_bound",
    "gamma",
    "log_softmax_backward_bound",
    "log_softmax_error_bound",
    "reference_backward_bound",
    "reference_forward_bound",
    "reference_log_softmax_backward_bound",
    "reference_log_softmax_bound",
    "row_sum_bound",
    "unit_interval_slack",
    "unit_roundoff",
]

Float64Array = NDArray[np.float64]

_EPS64 = float(np.finfo(np.float64).eps)

#: The accumulation models for half-precision inputs (see the module docstring).
ACCUMULATIONS: tuple[str, ...] = ("float32", "input")
_ACCUMULATION: ContextVar[str] = ContextVar("softmax_verify_accumulation", default="float32")

#: A relative bound standing for "no bound": where the model's bound reaches 1/2 or more,
#: nothing below 1 can be claimed. Finite (2**100), so that times an exact 0 it is 0,
#: and times any probability or upstream it stays finite and accepts every value.
VACUOUS = 2.0**100
#: Where :math:`t_i \ge 746`, :math:`y_i \le e^{-746}` is below float64's smallest
#: subnormal: the float64 reference is exactly 0 there, and so is :math:`\eta_i y_i`.
_NEGLIGIBLE_GAP = 746.0


@contextmanager
def accumulation(model: str) -> Iterator[None]:
    """Within this block, half-precision tolerances follow ``model`` (``ACCUMULATIONS``).

    A context variable: the threads of ``_parallel.map_blocks`` inherit it.
    """
    if model not in ACCUMULATIONS:
        raise ValueError(f"accumulate must be one of {', '.join(ACCUMULATIONS)}; got {model!r}")
    token = _ACCUMULATION.set(model)
    try:
        yield
    finally:
        _ACCUMULATION.reset(token)


def describe_accumulation(model: str) -> str:
    """The model in words, for a report header."""
    if model == "input":
        return "the input dtype (--accumulate input)"
    return "float32 or wider, rounded once to the output dtype (--accumulate float32)"


def unit_roundoff(dtype: DTypeLike) -> float:
    """``u = eps / 2`` of ``dtype``: the largest relative error of one rounding."""
    return float(finfo(resolve_dtype(dtype)).eps) / 2


def _model(dtype: DTypeLike) -> tuple[float, float]:
    """``(u_acc, u_out)``: the unit roundoff of the accumulation, and that of the one final
    rounding to the output dtype when it is a separate step (else 0).

    float32/float64, and half under ``"input"``: ``(u, 0)``. Half under ``"float32"``:
    ``(2**-24, u_h)``.
    """
    resolved = resolve_dtype(dtype)
    u = unit_roundoff(resolved)
    if is_half(resolved) and _ACCUMULATION.get() == "float32":
        return unit_roundoff(np.float32), u
    return u, 0.0


def chain(n: float | Float64Array, dtype: DTypeLike) -> Float64Array:
    r"""Relative error bound of n chained roundings for ``dtype`` under the accumulation model.

    :math:`u_{out} + (1 + u_{out})\gamma^{acc}_n` (``_model``): :math:`\gamma_n` itself for
    float32 and float64. ``VACUOUS`` where :math:`n u_{acc} \ge 1/2` (no useful bound).
    """
    u_acc, u_out = _model(dtype)
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


def _tiny(dtype: DTypeLike) -> float:
    r"""The absolute error allowed per rounding for underflow: :math:`\lambda`, the smallest
    normal number (a result flushed to zero, FTZ, errs by less).

    Under the ``"float32"`` half model the work is in float32, which may flush below
    float32's :math:`\lambda`, and only the final rounding is to the half dtype: that one
    keeps subnormals (IEEE gradual underflow, as numpy, ml_dtypes and CUDA's half
    conversions do), so it errs by at most half the half dtype's smallest subnormal
    :math:`\sigma_h`. The allowance is :math:`\lambda_{32} + \sigma_h`: about 6e-8 for
    float16, where its :math:`\lambda` of 6.1e-5 would hide a 50 % error in an entry
    of a 8192-wide row (each near 1.2e-4).
    """
    resolved = resolve_dtype(dtype)
    info = finfo(resolved)
    if _model(resolved)[1]:
        return float(np.finfo(np.float32).smallest_normal) + float(info.smallest_subnormal)
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


def forward_relative_bound(
    x: NDArray[Any], dtype: DTypeLike, *, moved: float = 0.0
) -> Float64Array:
    r"""Per-entry :math:`\eta_i = \gamma_{D + 10 + \ln D + t_i}` for (N, D) logits ``x``.

    ``moved`` (>= 0): the bound is wanted at every x' with :math:`|x'_j - x_j| \le`
    ``moved`` too (a perturbed point of a finite difference). There
    :math:`t'_i = \max_j x'_j - x'_i \le t_i + 2\,moved`, and :math:`\gamma` grows with
    its argument, so :math:`t_i` is enlarged by ``2 * moved``.

    Where :math:`(D + 10 + \ln D + t_i) u \ge 1/2` (so :math:`t_i \ge 2^{22} - D - 10 -
    \ln D` even in float32, and far more in float64) the exact probability is below
    :math:`e^{-t_i}`, about :math:`e^{-4\cdot 10^6}`, which is 0 in every dtype, so the error
    term :math:`\eta_i y_i` is 0 and those entries get :math:`\eta_i = 0`; only the
    absolute :math:`\lambda` remains.
    """
    x64 = np.asarray(x, dtype=np.float64)
    d = x64.shape[-1]
    u, u_out = _model(dtype)
    with np.errstate(over="ignore", invalid="ignore"):
        # One owned buffer, in place: nu = (D + 10 + ln D + t) u, then nu / (1 - nu).
        nu: Float64Array = np.subtract(x64.max(axis=-1, keepdims=True), x64)
        # Where the bound fails (nu >= 1/2): no claim (VACUOUS), unless t is so large that
        # y_i is 0 even at a point moved by ``moved``; for inf and NaN t too.
        lost = np.where(nu < _NEGLIGIBLE_GAP + 2 * moved, VACUOUS, 0.0)
        nu += d + 10 + math.log(d) + 2 * moved
        nu *= u
        small = nu < 0.5
        np.divide(nu, 1 - nu, out=nu, where=small)
        if u_out:  # the half model's final rounding: eta = u_out + (1 + u_out) gamma
            nu *= 1 + u_out
            nu += u_out
    np.copyto(nu, lost, where=~small)
    return nu


def _eta_times(x: NDArray[Any], y: Float64Array, dtype: DTypeLike, moved: float) -> Float64Array:
    r""":math:`y_i \eta_i`, an upper bound of ``forward_relative_bound(x, dtype, moved=moved)
    * y`` for (N, D) x and y >= 0, in three passes instead of nine.

    Per row, with :math:`\nu_i = (K + m - x_i) u` (K = D + 10 + ln D + 2 moved, m the
    row's maximum) and :math:`\nu^* = \max_i \nu_i` (at the row's minimum): where
    :math:`\nu^* < 1/2`, :math:`\eta_i = \nu_i / (1 - \nu_i) \le \beta (K + m - x_i)`
    with :math:`\beta = u / (1 - \nu^*)`, larger by a factor at most
    :math:`(1 - \nu_i)/(1 - \nu^*) \le 1 + 2 \nu^*` (about :math:`1 + 10^{-12}` for
    ordinary rows), and by a margin of 8 eps for the float64 roundings. Rows with
    :math:`\nu^* \ge 1/2` (a logit some :math:`2^{22}` below its row's maximum in
    float32) take ``forward_relative_bound`` itself.
    """
    x64 = np.asarray(x, dtype=np.float64)
    d = x64.shape[-1]
    u, u_out = _model(dtype)
    top = x64.max(axis=-1, keepdims=True)
    top += d + 10 + math.log(d) + 2 * moved  # K + m
    nu_max = (top - x64.min(axis=-1, keepdims=True)) * u
    with np.errstate(invalid="ignore", divide="ignore"):
        # The margin 1 + 8 eps covers the float64 roundings here and in the nine passes.
        beta = u * (1 + 8 * _EPS64) * (1 + u_out) / (1 - nu_max)
    out: Float64Array = np.subtract(top, x64)
    out *= beta
    if u_out:  # the half model's final rounding: eta = u_out + (1 + u_out) gamma
        out += u_out
    out *= y
    far = np.flatnonzero(~(nu_max[:, 0] < 0.5))  # NaN too
    if far.size:
        out[far] = forward_relative_bound(x64[far], dtype, moved=moved) * y[far]
    return out


def forward_error_bound(x: NDArray[Any], y_exact: NDArray[Any], dtype: DTypeLike) -> Float64Array:
    r"""Per-entry bound :math:`\eta_i y_i + \lambda` on ``|y_hat - y|`` for a correct forward."""
    y64 = np.abs(np.asarray(y_exact, dtype=np.float64))
    return forward_relative_bound(x, dtype) * y64 + _tiny(dtype)


def reference_forward_bound(
    x: NDArray[Any], y_exact: NDArray[Any], dtype: DTypeLike
) -> Float64Array:
    """``forward_error_bound`` plus the float64 reference's own bound it is compared with."""
    return forward_error_bound(x, y_exact, dtype) + forward_error_bound(x, y_exact, np.float64)


def row_sum_bound(d: int, dtype: DTypeLike) -> float:
    r"""Bound on :math:`|\sum_i \hat y_i - 1|` for a correct forward on rows of length ``d``.

    :math:`\sum_i (\eta_i y_i + \lambda) \le \gamma_{D + 10 + 2\ln D} + D\lambda`, using
    :math:`\sum_i y_i t_i \le \ln D`; plus :math:`\gamma_{D}` in float64 for the check's own
    sum (the check adds in float64).
    """
    bound = chain(d + 10 + 2 * math.log(d), dtype) + d * _tiny(dtype) + gamma(d, np.float64)
    return float(bound)


def unit_interval_slack(dtype: DTypeLike) -> float:
    r"""How far above 1 a correct probability may round: :math:`2u`.

    ``e_i / s`` with ``s >= e_i`` never exceeds 1 (rounding is monotone), but a
    reciprocal-and-multiply ``e_i * fl(1/s)`` rounds twice: :math:`(1+u)^2 < 1 + 2u + u^2`,
    which rounds to at most :math:`1 + 2u` (one ulp above 1). Below 0 is never allowed.
    """
    return 2 * unit_roundoff(dtype)


def backward_error_bound(
    x: NDArray[Any], y_exact: NDArray[Any], dout: NDArray[Any], dtype: DTypeLike
) -> Float64Array:
    r"""Per-entry bound on ``|dx_hat - dx|`` for ``dx = y * (g - <g, y>)`` computed in ``dtype``.

    With the forward's relative errors :math:`\eta_j`, :math:`P = \sum_j |g_j| y_j`
    and :math:`Q = \sum_j |g_j| y_j \eta_j`, first-order error analysis of
    :math:`\hat y_i (g_i - \widehat{\langle g, \hat y\rangle})` gives

    .. math:: |\hat{dx}_i - dx_i| \le y_i\left[(\eta_i + \gamma_{D+4})(|g_i| + P) + Q\right]
              + \lambda \|g\|_\infty

    (:math:`\gamma_{D+4}`: D-1 roundings in the inner product, the subtraction, the
    product, the output rounding, and two spare for an implementation that divides
    by the row sum on the way). Two absolute terms cover underflow: :math:`\lambda
    \|g\|_\infty` for probabilities that underflow, and :math:`(D + 4)\lambda` for
    those D + 4 roundings landing below the normal range. There an IEEE rounding errs
    by at most half a subnormal spacing, but implementations that flush subnormals to
    zero (XLA on CPU, CUDA's fast-math, ``-ffast-math`` builds: FTZ/DAZ) may turn any
    operand or result below :math:`\lambda` into 0, an absolute error below
    :math:`\lambda` each. Both are correct implementations of softmax, so the bound
    allows the larger.
    """
    x64 = np.asarray(x, dtype=np.float64)
    y64 = np.abs(np.asarray(y_exact, dtype=np.float64))
    g = np.abs(np.asarray(dout, dtype=np.float64))
    return _backward_bound(y64, g, forward_relative_bound(x64, dtype), dtype)


def _backward_bound(
    y: Float64Array, g: Float64Array, eta: Float64Array, dtype: DTypeLike
) -> Float64Array:
    r"""``backward_error_bound`` from ``|y|``, ``|dout|`` and :math:`\eta` (float64, (N, D)).

    For callers that evaluate it many times on one x (the gradient checks): :math:`\eta`
    is computed once, and any upper bound on it gives an upper bound here.
    """
    d = y.shape[-1]
    p = np.einsum("...i,...i->...", g, y)[..., None]
    gy = g * y
    q = np.einsum("...i,...i->...", gy, eta)[..., None]
    gmax = g.max(axis=-1, keepdims=True)
    result: Float64Array = eta + chain(d + 4, dtype)
    result *= g + p
    result += q
    result *= y
    result += _tiny(dtype) * gmax + (d + 4) * _tiny(dtype)
    return result


def reference_backward_bound(
    x: NDArray[Any], y_exact: NDArray[Any], dout: NDArray[Any], dtype: DTypeLike
) -> Float64Array:
    """``backward_error_bound`` plus the float64 reference's own bound it is compared with."""
    return backward_error_bound(x, y_exact, dout, dtype) + backward_error_bound(
        x, y_exact, dout, np.float64
    )


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


# --- log_softmax ---------------------------------------------------------------------------


def log_softmax_error_bound(
    x: NDArray[Any], z_exact: NDArray[Any], dtype: DTypeLike, *, moved: float = 0.0
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
    """
    x64 = np.asarray(x, dtype=np.float64)
    d = x64.shape[-1]
    u = unit_roundoff(dtype)
    with np.errstate(over="ignore", invalid="ignore"):
        t = x64.max(axis=-1, keepdims=True) - x64 + 2 * moved
        out: Float64Array = u * (1 + 4 * u) * (t + 2 * (np.abs(z_exact) + 2 * moved))
    out += gamma(d + 10 + 5 * math.log(d), dtype) + d * _tiny(dtype)
    return out


def reference_log_softmax_bound(
    x: NDArray[Any], z_exact: NDArray[Any], dtype: DTypeLike
) -> Float64Array:
    """``log_softmax_error_bound`` plus the float64 reference's own bound."""
    return log_softmax_error_bound(x, z_exact, dtype) + log_softmax_error_bound(
        x, z_exact, np.float64
    )


def log_softmax_backward_bound(
    x: NDArray[Any], z_exact: NDArray[Any], dout: NDArray[Any], dtype: DTypeLike
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
    ``backward_error_bound``).
    """
    x64 = np.asarray(x, dtype=np.float64)
    d = x64.shape[-1]
    y = np.exp(np.asarray(z_exact, dtype=np.float64))
    g = np.abs(np.asarray(dout, dtype=np.float64))
    total = g.sum(axis=-1, keepdims=True)
    a = np.minimum(log_softmax_error_bound(x64, z_exact, dtype), 700.0)
    rho = np.expm1(a) + 4 * unit_roundoff(dtype) + forward_relative_bound(x64, dtype)
    with np.errstate(invalid="ignore"):
        spread = np.where(y > 0, y * total * (rho + gamma(d + 3, dtype) * (1 + rho)), 0.0)
    out: Float64Array = spread + gamma(3, dtype) * g + _tiny(dtype) * (total + d + 4)
    return out


def reference_log_softmax_backward_bound(
    x: NDArray[Any], z_exact: NDArray[Any], dout: NDArray[Any], dtype: DTypeLike
) -> Float64Array:
    """``log_softmax_backward_bound`` plus the float64 reference VJP's own bound."""
    return log_softmax_backward_bound(x, z_exact, dout, dtype) + log_softmax_backward_bound(
        x, z_exact, dout, np.float64
    )


# --- perturbed inputs ----------------------------------------------------------------------


def softmax_perturbation(y_exact: NDArray[Any], spread: NDArray[Any]) -> Float64Array:
    r"""How far softmax moves when the logits of a row move by at most ``spread``:
    :math:`y_i (e^{2\|\delta\|_\infty} - 1)`.

    :math:`y_i(x + \delta) = e^{\delta_i} y_i / \sum_j y_j e^{\delta_j}`, a factor within
    :math:`e^{\pm 2\|\delta\|_\infty}`. ``spread``: :math:`\|\delta\|_\infty` per row (N, 1).
    """
    out: Float64Array = np.asarray(y_exact, dtype=np.float64) * np.expm1(2 * spread)
    return out


def log_softmax_perturbation(spread: NDArray[Any]) -> Float64Array:
    r"""How far log_softmax moves when a row's logits move by at most ``spread``:
    :math:`dz = \delta - \mathbf 1 \langle y, \delta\rangle`, at most :math:`2\|\delta\|_\infty`."""
    out: Float64Array = 2 * np.asarray(spread, dtype=np.float64)
    return out


def softmax_vjp_perturbation(y_exact: NDArray[Any], delta: NDArray[Any]) -> Float64Array:
    r""":math:`|J\delta|_i \le y_i(|\delta_i| + \sum_j y_j |\delta_j|)`: how far the softmax
    VJP moves when its upstream moves by ``delta`` (:math:`J = \operatorname{diag}(y) -
    yy^\top`)."""
    y = np.asarray(y_exact, dtype=np.float64)
    d = np.abs(np.asarray(delta, dtype=np.float64))
    out: Float64Array = y * (d + (y * d).sum(axis=-1, keepdims=True))
    return out


def log_softmax_vjp_perturbation(z_exact: NDArray[Any], delta: NDArray[Any]) -> Float64Array:
    r""":math:`|J^\top\delta|_i \le |\delta_i| + y_i \sum_j |\delta_j|`: how far the
    log_softmax VJP moves when its upstream moves by ``delta`` (:math:`J = I - \mathbf 1
    y^\top`, :math:`y = e^z`)."""
    d = np.abs(np.asarray(delta, dtype=np.float64))
    out: Float64Array = d + np.exp(np.asarray(z_exact, dtype=np.float64)) * d.sum(
        axis=-1, keepdims=True
    )
    return out


def combination_rounding(*terms: NDArray[Any]) -> Float64Array:
    r""":math:`\gamma_2 \sum_k |t_k|`: a check's own float64 combination :math:`a p + b q` of
    two results (a product by a power of two is exact; the addition and a spare rounding)."""
    total = sum(np.abs(np.asarray(t, dtype=np.float64)) for t in terms)
    out: Float64Array = gamma(2, np.float64) * np.asarray(total, dtype=np.float64)
    return out


# --- log_softmax: whole rows -----------------------------------------------------------------


def logsumexp_bound(x: NDArray[Any], z_exact: NDArray[Any], dtype: DTypeLike) -> Float64Array:
    r"""Per row, how far :math:`\log\sum_i e^{\hat z_i}` may be from 0 for a correct log_softmax.

    With :math:`\hat z_i = z_i + e_i`, :math:`|e_i| \le a_i` (``log_softmax_error_bound``):
    :math:`\log\sum_i y_i e^{e_i}` lies within :math:`b = \sum_i y_i (e^{a_i} - 1)` above and
    :math:`b / (1 - b)` below 0. Bound: :math:`b/(1-b)` (infinite where :math:`b \ge 1`)
    plus :math:`\gamma_{D+4}` in float64 for the logsumexp the check takes itself.
    """
    z = np.asarray(z_exact, dtype=np.float64)
    with np.errstate(all="ignore"):
        a = np.minimum(log_softmax_error_bound(x, z, dtype), 700.0)  # expm1 stays finite
        b = np.where(z > -745, np.exp(z) * np.expm1(a), 0.0).sum(axis=-1)
        out: Float64Array = np.where(b < 1, b / (1 - b), np.inf) + gamma(
            z.shape[-1] + 4, np.float64
        )
    return out


def log_probability_slack(d: int, dtype: DTypeLike) -> float:
    r"""How far above 0 a correct log-probability may round: :math:`\gamma_{D + 10 + 5\ln D}
    + D\lambda`, ``log_softmax_error_bound`` at :math:`t_i = z_i = 0` (the error allowed in
    :math:`\log \hat s`)."""
    return float(gamma(d + 10 + 5 * math.log(d), dtype)) + d * _tiny(dtype)


# --- stages of a staged backward -------------------------------------------------------------


def stage_bound(abs_formula: NDArray[Any], d: int, dtype: DTypeLike) -> Float64Array:
    r"""Per-entry bound on a stage of the staged backward: :math:`(\gamma_{D+5} + \lambda)
    |F| + \lambda`.

    Each stage is a chain of at most D + 5 roundings (D - 1 in the row sum), so by Higham's
    standard result its error is at most :math:`\gamma_{D+5}` (``chain``) times the same
    formula evaluated on absolute values, ``abs_formula``; plus :math:`\lambda` times that
    and :math:`\lambda` for underflow.
    """
    tiny = _tiny(dtype)
    scale = np.asarray(abs_formula, dtype=np.float64)
    out: Float64Array = (chain(d + 5, dtype) + tiny) * scale + tiny
    return out


# --- gradient checks: central differences ----------------------------------------------------

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
    eta: Float64Array, y: Float64Array, largest: float, dtype: DTypeLike
) -> Float64Array:
    r""":math:`E^+_i + E^-_i`: the forward's bound at both points :math:`x \pm h_\pm e_j`,
    for every column j at once (N, D): :math:`2(e^{h} \eta_i y_i + \lambda)`.

    ``eta`` is ``forward_relative_bound(x, dtype, moved=largest)``: at a point that moved
    one coordinate by :math:`s \le h` = ``largest``, :math:`\eta_i` is at most that, and
    the probability at most :math:`e^s y_i(x)` (along one coordinate :math:`|\partial \log
    y_i / \partial x_j| = |\delta_{ij} - y_j| \le 1`).
    """
    out: Float64Array = eta * y
    out *= 2 * math.exp(largest)
    out += 2 * _tiny(dtype)
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
    y: Float64Array, eta: Float64Array, start: int, stop: int, dtype: DTypeLike
) -> Float64Array:
    r"""``backward_error_bound`` for the basis upstreams :math:`g = e_j`, j in
    ``start:stop``, laid out [j, r, i] (c, N, D): with :math:`P = y_j`, :math:`Q = y_j
    \eta_j`,

    .. math:: y_i (\eta_i + \gamma_{D+4})(\delta_{ij} + y_j) + y_i y_j \eta_j + (D + 5)\lambda

    ``eta`` may be any upper bound of :math:`\eta` (the gradient checks take it at the
    farthest perturbed point).
    """
    d = y.shape[-1]
    cols = slice(start, stop)
    c = stop - start
    y_j = y[:, cols].T[:, :, None]
    scale = y_j * (eta[:, cols].T[:, :, None] + chain(d + 4, dtype))
    out: Float64Array = scale * y
    out += y_j * (y * eta)
    out[np.arange(c), :, np.arange(start, stop)] += scale[:, :, 0]  # delta_ij
    out += (d + 5) * _tiny(dtype)
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
    """
    d = y.shape[-1]
    tiny = _tiny(dtype)
    subtraction = float(gamma(1, np.float64))  # fl(out+ - out-) in float64
    backward_gamma = float(chain(d + 4, dtype))
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


# --- diagnoses -------------------------------------------------------------------------------


def formula_bound(
    abs_formula: NDArray[Any], x: NDArray[Any], dout: NDArray[Any], dtype: DTypeLike
) -> Float64Array:
    r"""Per-entry bound for a backward formula F built from y, g and x by products and sums,
    evaluated in float64 at an implementation's own forward output (the diagnoses):

    .. math:: \tau_F = (8\eta + \gamma_n + \gamma^{(64)}_n)\,|F|_{abs} + n\lambda(1 + \|g\|_\infty)

    - ``abs_formula`` :math:`|F|_{abs}`: F with every term replaced by its absolute value
      (Higham: rounding errors are relative to the terms, not to their sum);
    - :math:`8\eta`, :math:`\eta` the row's largest ``forward_relative_bound``: the backward
      may re-derive y from its cache (both within :math:`\eta` of the exact, so
      :math:`2\eta` apart), y enters up to squared (:math:`4\eta`), and through a softmax
      of y twice that;
    - :math:`\gamma_n`, :math:`n = ND + D + 16`: the roundings of any sum over at most the
      batch, a few products and the output, in the dtype and again in float64;
    - :math:`n\lambda(1 + \|g\|_\infty)`: underflow below the normal range (flushed or not).
    """
    x64 = np.asarray(x, dtype=np.float64)
    n = x64.size + x64.shape[1] + 16
    eta = forward_relative_bound(x64, dtype).max(axis=1, keepdims=True)
    scale = 8 * eta + gamma(n, dtype) + gamma(n, np.float64)
    gmax = float(np.abs(np.asarray(dout, dtype=np.float64)).max(initial=0.0))
    lam = _smallest_normal(dtype)  # the dtype's own: the formula may be evaluated in it
    out: Float64Array = scale * np.asarray(abs_formula, dtype=np.float64) + n * lam * (1 + gmax)
    return out


def log_output_error(x: NDArray[Any], y_hat: NDArray[Any], dtype: DTypeLike) -> Float64Array:
    r"""Bound on :math:`|\log \hat y_i - \log y_i|` for a correct forward's output ``y_hat``:
    :math:`1.01(\eta_i + \lambda / \hat y_i)`, valid where it is below 1 % (there
    :math:`|\log(1 + e)| \le 1.01|e|`); larger values say the entry is unusable."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out: Float64Array = 1.01 * (
            forward_relative_bound(x, dtype)
            + _smallest_normal(dtype) / np.asarray(y_hat, dtype=np.float64)
        )
    return out
