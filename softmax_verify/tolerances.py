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
