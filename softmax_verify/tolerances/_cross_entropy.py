r"""Softmax cross-entropy's bounds: the loss (a row's :math:`A_i`, a reduced loss's), the
gradient's :math:`\tau_{ij}`, and the whole-loss checks sized from them (docs/tolerances.md,
"Cross-entropy", derives each).

Notation, per row of length C (``core.cross_entropy``): target row :math:`q \ge 0`, its
mass :math:`S = \sum_j q_j` (exactly 1 for every label the strategies draw), n its
non-zero entries (1 for index and one-hot labels), row maximum m, gaps
:math:`t_j = m - x_j`, :math:`L = \log\sum_j e^{-t_j} \in [0, \ln C]`, the loss
:math:`\ell = \sum_j q_j (t_j + L)`, :math:`X = \sum_j q_j |x_j|`, p the softmax, z the
log-softmax. The batch: N rows, :math:`\mathcal L = \sum_i c_i \ell_i` with :math:`c_i =
g/N` (mean), g (sum) or :math:`g_i` (none); :math:`w = 1/N` or 1 the reduction's weight;
:math:`K = \sum_i n_i`. :math:`u^+ = u(1 + 4u)`; :math:`\tilde\gamma_n = \gamma_n` for
:math:`n \ge 2`, 0 for n = 1 (the one term of a one-hot dot product, :math:`1\cdot v`, is
exact).

Every bound is computed from the float64 reference (x, q and the exact :math:`\ell`),
never from the values under test. Half precision follows the ``accumulate`` model
(package docstring), with one difference, decided for this kind because correct
framework code computes a fused loss in several ops: under ``"float32"`` each op computes
in float32 and may store its result in the half dtype (log-softmax's output,
logsumexp's, the gathered value, the mean), so a bound B at float32 becomes
:math:`(1 + u_h)B` plus a fixed number of half roundings of those intermediates
(``_stored_loss``, ``_stored_dx``), not a chain of C; a kernel that rounds once is inside
it too. Under ``"input"`` every :math:`\gamma` is at :math:`u_h` (``VACUOUS`` where it
reaches 1/2: rows beyond about 900 classes in float16, 110 in bfloat16).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import DTypeLike, NDArray

from softmax_verify.core import cross_entropy as ce
from softmax_verify.core.dtypes import finfo
from softmax_verify.core.options import Accumulation, Reduction
from softmax_verify.core.oracle import log_softmax, softmax
from softmax_verify.tolerances._forward import forward_relative_bound
from softmax_verify.tolerances._rounding import (
    VACUOUS,
    Float64Array,
    _model,
    _tiny,
    gamma,
    unit_roundoff,
)

__all__ = [
    "cross_entropy_alone_bound",
    "cross_entropy_backward_bound",
    "cross_entropy_batch_bound",
    "cross_entropy_difference_step",
    "cross_entropy_loss_bound",
    "cross_entropy_nonnegative_slack",
    "cross_entropy_row_bound",
    "cross_entropy_row_sum_bound",
    "cross_entropy_shift_perturbation",
    "reference_cross_entropy_backward_bound",
    "reference_cross_entropy_loss_bound",
]

F64 = np.dtype(np.float64)


def _gamma_u(k: float | Float64Array, u: float) -> Float64Array:
    r""":math:`\gamma_k = ku/(1 - ku)` at the unit roundoff ``u``; ``VACUOUS`` where
    :math:`ku \ge 1/2`."""
    nu = np.asarray(k, dtype=np.float64) * u
    out: Float64Array = np.where(nu < 0.5, nu / np.maximum(1 - nu, 0.5), VACUOUS)
    return out


def _parts(x: NDArray[Any], q: NDArray[Any]) -> tuple[Float64Array, ...]:
    r"""Per row (N,): :math:`\langle q, t\rangle`, :math:`|m|`, L, X, n and S."""
    x64, q64 = np.asarray(x, np.float64), np.asarray(q, np.float64)
    t, log_sum = ce.gaps_and_log_sum(x64)
    with np.errstate(all="ignore"):
        qt = np.where(q64 != 0, q64 * t, 0.0).sum(axis=-1)
        big_x = np.where(q64 != 0, q64 * np.abs(x64), 0.0).sum(axis=-1)
    n = (q64 != 0).sum(axis=-1).astype(np.float64)
    return qt, np.abs(x64.max(axis=-1)), log_sum[:, 0], big_x, n, np.abs(q64).sum(axis=-1)


def _row_core(
    x: NDArray[Any], q: NDArray[Any], ell: NDArray[Any], u: float, tiny: float, moved: float
) -> Float64Array:
    r""":math:`A_i` at the unit roundoff u and underflow allowance ``tiny``:

    .. math:: A_i = S\gamma_{C + 10 + 5\ln C} + u^+(\langle q, t\rangle + 2\ell) + u(|m| + L)
              + \tilde\gamma_n(\ell + X) + C\lambda

    - :math:`S\gamma_{C+10+5\ln C}`: :math:`\log\hat s` (the sum of C exps, each within 2
      ulps of a shifted logit whose rounding is weighted by :math:`p_j`, with
      :math:`\sum_j p_j t_j \le \ln C`; the log to 2 ulps), in every :math:`z_j` once, with
      weight S in the loss: log_softmax's constant;
    - :math:`u^+\langle q, t\rangle`: each shifted logit :math:`x_j - m` rounded once;
    - :math:`2u^+\ell`: :math:`z_j = (x_j - m) - \log s` rounded, and the output;
    - :math:`u(|m| + L)`: code that forms :math:`\mathrm{lse} = m + L` first (the issue's
      formula, ``logsumexp(x) - x[y]``, optax's integer-label loss) rounds it to half an ulp
      of :math:`|\mathrm{lse}|`, whatever the loss; without this term those correct styles
      fail from logits of about 30 in float32;
    - :math:`\tilde\gamma_n(\ell + X)`: a dot product with the target row, either
      :math:`-\langle q, z\rangle` (terms summing to :math:`\ell`) or :math:`\langle q,
      x\rangle` (terms summing to X);
    - :math:`C\lambda`: exps that underflow or flush to zero, relative to :math:`s \ge 1`.

    The terms of the different styles are added, not maxed: the bound holds for code
    that mixes them. ``moved``: the bound at every point within ``moved`` of x along one
    coordinate (:math:`t_j` and :math:`\langle q,t\rangle/S` grow by at most 2 moved;
    :math:`\ell`, L, :math:`|m|` and X by at most moved, as :math:`|\partial\ell/\partial
    x_j| = |Sp_j - q_j| \le \max(S, 1)`).
    """
    qt, abs_m, log_sum, big_x, n, mass = _parts(x, q)
    c = np.asarray(x).shape[-1]
    ell64 = np.abs(np.asarray(ell, dtype=np.float64))
    up = u * (1 + 4 * u)
    with np.errstate(all="ignore"):
        out: Float64Array = mass * _gamma_u(c + 10 + 5 * math.log(c), u)
        out += up * (qt + 2 * mass * moved + 2 * (ell64 + mass * moved))
        out += u * (abs_m + log_sum + 2 * moved)
        out += np.where(n > 1, _gamma_u(n, u), 0.0) * (ell64 + big_x + 2 * mass * moved)
        out += c * tiny
    return np.where(np.isnan(out), np.inf, out)


def _stored_loss(x: NDArray[Any], q: NDArray[Any], ell: NDArray[Any], moved: float) -> Float64Array:
    r"""Per row, what a loss computed in float32 ops that store their results in half
    gains, in units of :math:`u_h`: :math:`E_i = 3\ell + |m| + L + X[n > 1]` (log-softmax's
    output and the product with q, each relative to the terms summing to :math:`\ell`;
    logsumexp's output, :math:`|m| + L`; a stored :math:`\langle q, x\rangle`; the output),
    plus 6 moved."""
    _, abs_m, log_sum, big_x, n, _ = _parts(x, q)
    ell64 = np.abs(np.asarray(ell, dtype=np.float64))
    with np.errstate(all="ignore"):
        out: Float64Array = 3 * ell64 + abs_m + log_sum + np.where(n > 1, big_x, 0.0)
    return out + 6 * moved


def cross_entropy_row_bound(
    x: NDArray[Any],
    q: NDArray[Any],
    ell: NDArray[Any],
    dtype: DTypeLike,
    *,
    moved: float = 0.0,
    accumulate: Accumulation = "float32",
) -> Float64Array:
    r"""Per row (N,), the bound :math:`A_i` on a correct row loss returned in ``dtype``
    (``_row_core`` at the accumulation's u and :math:`\lambda`). Half under ``"float32"``:
    :math:`(1 + u_h)A_i^{(32)} + u_h E_i` (``_stored_loss``)."""
    u, u_out = _model(dtype, accumulate)
    core = _row_core(x, q, ell, u, _tiny(dtype, accumulate), moved)
    if not u_out:
        return core
    out: Float64Array = (1 + u_out) * core + u_out * _stored_loss(x, q, ell, moved)
    return out


def _reduced(
    rows: Float64Array,
    ell: Float64Array,
    stored: Float64Array,
    k: Float64Array,
    w: float,
    units: tuple[float, float, float],
    moved: float,
) -> Float64Array:
    r"""The reduction's bound over the rows' :math:`A_i` (``rows``), summed along the last
    axis: :math:`w[(1 + \gamma_{K+1})\sum A_i + \gamma_{K+1}\sum(\ell_i + m)] + \lambda`, K the
    non-zero terms; half under ``"float32"`` (``units`` = u, :math:`u_h`, :math:`\lambda`):
    :math:`(1 + u_h)` that :math:`+ u_h[w(1 + \gamma_{K+1})\sum E_i + |w\sum\ell_i|]`."""
    u, u_out, tiny = units
    g_k = _gamma_u(k + 1, u)
    with np.errstate(all="ignore"):
        total = (1 + g_k) * (w * rows).sum(axis=-1) + g_k * (w * (ell + moved)).sum(axis=-1)
        total = total + tiny
        if u_out:
            kept = (1 + g_k) * (w * stored).sum(axis=-1) + np.abs((w * ell).sum(axis=-1))
            total = (1 + u_out) * total + u_out * kept
    out: Float64Array = np.asarray(total, dtype=np.float64)
    return out


def cross_entropy_loss_bound(
    x: NDArray[Any],
    q: NDArray[Any],
    ell: NDArray[Any],
    dtype: DTypeLike,
    reduction: Reduction,
    *,
    moved: float = 0.0,
    accumulate: Accumulation = "float32",
) -> Float64Array:
    r"""The bound on a correct loss of ``reduction``: :math:`A_i` per row (N,) for none, else
    (0-d)

    .. math:: |\hat{\mathcal L} - \mathcal L| \le w\left[(1 + \gamma_{K+1})\sum_i A_i
              + \gamma_{K+1}\sum_i \ell_i\right] + \lambda

    The rows' own errors, then the reduction in any order of summation, over the rows'
    losses or over all K non-zero terms at once (``-(q * log_softmax(x)).sum() / N``: a tree
    of height at most K - 1, adding an exact zero does not round), each rounding relative to
    partial sums of the non-negative computed terms :math:`\ell_i + A_i`; one more for the
    mean's division and one for the output; :math:`\lambda` for a result below the normal
    range. ``ell`` is the exact row losses (N,). Half under ``"float32"``: ``_reduced``
    (the rows' stored intermediates, and the reduced value stored). Where the exact rows
    sum beyond a quarter of the dtype's max, a correct sum may overflow on the way (a mean
    of rows near max/2 each): the bound is inf, the loss not judged."""
    ell64 = np.asarray(ell, dtype=np.float64)
    if reduction == "none":
        return cross_entropy_row_bound(x, q, ell64, dtype, moved=moved, accumulate=accumulate)
    u, u_out = _model(dtype, accumulate)
    tiny = _tiny(dtype, accumulate)
    with np.errstate(all="ignore"):
        if not float(ell64.sum()) <= float(finfo(dtype).max) / 4:
            return np.asarray(np.inf)
    rows = _row_core(x, q, ell64, u, tiny, moved)
    k = np.asarray(float((np.asarray(q) != 0).sum()))
    w = 1.0 / ell64.shape[0] if reduction == "mean" else 1.0
    stored = _stored_loss(x, q, ell64, moved)
    return _reduced(rows, ell64, stored, k, w, (u, u_out, tiny), moved)


def cross_entropy_alone_bound(
    x: NDArray[Any],
    q: NDArray[Any],
    ell: NDArray[Any],
    dtype: DTypeLike,
    *,
    moved: float = 0.0,
    accumulate: Accumulation = "float32",
) -> Float64Array:
    r"""Per row (N,), the bound on the loss of that row alone, a batch of one (its mean and
    its sum are the row's loss): ``cross_entropy_loss_bound`` of ``x[i:i+1]``, with
    :math:`K = n_i`, for every row at once."""
    ell64 = np.asarray(ell, dtype=np.float64)
    u, u_out = _model(dtype, accumulate)
    tiny = _tiny(dtype, accumulate)
    rows = _row_core(x, q, ell64, u, tiny, moved)[:, None]
    stored = _stored_loss(x, q, ell64, moved)[:, None]
    n = (np.asarray(q) != 0).sum(axis=-1).astype(np.float64)
    return _reduced(rows, ell64[:, None], stored, n, 1.0, (u, u_out, tiny), moved)


def reference_cross_entropy_loss_bound(
    x: NDArray[Any],
    q: NDArray[Any],
    ell: NDArray[Any],
    dtype: DTypeLike,
    reduction: Reduction,
    *,
    accumulate: Accumulation = "float32",
) -> Float64Array:
    """``cross_entropy_loss_bound`` plus the float64 oracle's own (which reduces with
    ``math.fsum``: within the float64 bound)."""
    mine = cross_entropy_loss_bound(x, q, ell, dtype, reduction, accumulate=accumulate)
    return mine + cross_entropy_loss_bound(x, q, ell, np.float64, reduction)


def _stored_dx(p: Float64Array, z: Float64Array, q: Float64Array, c: Float64Array, u_h: float,
               mass: Float64Array) -> Float64Array:  # fmt: skip
    r"""What a gradient of float32 ops storing half intermediates gains: p recovered as the
    exp of a stored log-softmax, relative :math:`e^{u_h(2|z_j| + 2)} - 1`, and the roundings
    of p, p - q and the product, :math:`u_h|c|(3p_j + 2q_j)`."""
    with np.errstate(all="ignore"):
        out: Float64Array = c * mass * p * np.expm1(u_h * (2 * np.minimum(np.abs(z), 700.0) + 2))
    out += u_h * c * (3 * p + 2 * np.abs(q))
    return out


def cross_entropy_backward_bound(
    x: NDArray[Any],
    q: NDArray[Any],
    weights: NDArray[Any],
    dtype: DTypeLike,
    *,
    moved: float = 0.0,
    accumulate: Accumulation = "float32",
) -> Float64Array:
    r"""Per entry (N, C), the bound :math:`\tau_{ij}` on a correct gradient in ``dtype``:

    .. math:: \tau_{ij} = |c_i|\left[p_j S(\rho_j + \gamma_{n + 4}) + \gamma_5 q_j\right]
              + \lambda(|c_i| + n + 5)

    ``weights`` the :math:`c_i` (N, 1) (``core.cross_entropy.weights``). :math:`\rho_j =
    \max(\eta_j, e^{a_j} - 1 + 4u)`: the relative error of the probability the code uses,
    a softmax (:math:`\eta_j`, ``forward_relative_bound``) or the exp of a log-softmax
    (:math:`a_j = \gamma_{C+10+5\ln C} + u^+(t_j + 2|z_j|)`, log_softmax's bound). The fused
    form :math:`c(\hat p - q)` rounds the subtraction, :math:`c = g/N` (twice if formed as
    :math:`g \cdot (1/N)`), the product and the output: :math:`\gamma_5` relative to
    :math:`p_j + q_j`, not to their difference (Higham). Autograd through log_softmax forms
    :math:`dz = -cq` and :math:`dz - \hat p\sum_k dz_k`: the sum of n terms adds
    :math:`\gamma_{n-1}` on :math:`p_j|c|S`. :math:`\lambda`: a probability that underflows,
    and n + 5 roundings below the normal range. Left out on purpose: a term in
    :math:`u|m|`. Every mainstream gradient (the fused :math:`p - q`, autograd through
    log_softmax, jax's logsumexp) is shift invariant and meets this bound; one that
    recomputes p as :math:`\exp(x - \widehat{\mathrm{lse}})` from a rounded logsumexp
    (``torch.logsumexp``'s backward) errs by :math:`u|\mathrm{lse}|` relative, a real loss
    of accuracy at large logits, and is reported. ``moved``: as ``forward_relative_bound``.
    Half under ``"float32"``: :math:`(1 + u_h)\tau^{(32)}` plus ``_stored_dx``.
    """
    x64, q64 = np.asarray(x, np.float64), np.asarray(q, np.float64)
    c_len = x64.shape[-1]
    u, u_out = _model(dtype, accumulate)
    tiny = _tiny(dtype, accumulate)
    c = np.abs(np.asarray(weights, dtype=np.float64))
    p, z = softmax(x64), log_softmax(x64)
    n = (q64 != 0).sum(axis=-1, keepdims=True).astype(np.float64)
    mass = np.abs(q64).sum(axis=-1, keepdims=True)
    eta = forward_relative_bound(x64, dtype, moved=moved, accumulate=accumulate)
    with np.errstate(all="ignore"):
        t = x64.max(axis=-1, keepdims=True) - x64 + 2 * moved
        a = _gamma_u(c_len + 10 + 5 * math.log(c_len), u) + u * (1 + 4 * u) * (
            t + 2 * (np.abs(z) + 2 * moved)
        )
        rho = np.maximum(eta, np.where(p > 0, np.expm1(np.minimum(a, 700.0)) + 4 * u, 0.0))
        core = c * (p * mass * (rho + _gamma_u(n + 4, u)) + _gamma_u(5, u) * np.abs(q64))
        core = np.where(np.isnan(core), np.inf, core) + tiny * (c + n + 5)
        if u_out:
            core = (1 + u_out) * core + _stored_dx(p, z, q64, c, u_out, mass)
    out: Float64Array = core
    return out


def reference_cross_entropy_backward_bound(
    x: NDArray[Any],
    q: NDArray[Any],
    weights: NDArray[Any],
    dtype: DTypeLike,
    *,
    accumulate: Accumulation = "float32",
) -> Float64Array:
    """``cross_entropy_backward_bound`` plus the float64 oracle VJP's own."""
    mine = cross_entropy_backward_bound(x, q, weights, dtype, accumulate=accumulate)
    return mine + cross_entropy_backward_bound(x, q, weights, np.float64)


def cross_entropy_nonnegative_slack(
    x: NDArray[Any],
    q: NDArray[Any],
    dtype: DTypeLike,
    reduction: Reduction,
    *,
    accumulate: Accumulation = "float32",
) -> Float64Array:
    r"""How far below 0 a correct loss may round: the loss bound at :math:`\ell = 0`.

    Exactly :math:`\ell_i = -\sum_j q_j \log p_j \ge 0` for every :math:`q \ge 0` (each
    :math:`-\log p_j \ge 0`): index, one-hot and probability labels alike. :math:`\ell - A(
    \ell)` grows with :math:`\ell` (A's coefficient of :math:`\ell` is below 1, and
    :math:`\langle q, t\rangle \le \ell`), so the lowest a correct value can be is
    :math:`-A(0)`: per row :math:`S\gamma_{C+10+5\ln C} + u(|m| + L) + \tilde\gamma_n X +
    C\lambda`, reduced :math:`w(1 + \gamma_{K+1})\sum_i` of it :math:`+ \lambda`. Max-shift
    code never goes below 0 (:math:`\hat s \ge 1`, rounding is monotone); ``-log`` of a
    probability rounded to :math:`1 + 2u` does, by 2u; :math:`\mathrm{lse} - \langle q,
    x\rangle` on near-one-hot probability rows does, by the dot product's rounding. Half
    under ``"float32"``: :math:`(1 + u_h)` that :math:`+ u_h(|m| + L + X[n > 1])`.
    """
    _, abs_m, log_sum, big_x, n, mass = _parts(x, q)
    c = np.asarray(x).shape[-1]
    u, u_out = _model(dtype, accumulate)
    tiny = _tiny(dtype, accumulate)
    with np.errstate(all="ignore"):
        a = mass * _gamma_u(c + 10 + 5 * math.log(c), u) + u * (abs_m + log_sum)
        a = a + np.where(n > 1, _gamma_u(n, u), 0.0) * big_x + c * tiny
        stored = abs_m + log_sum + np.where(n > 1, big_x, 0.0)
        if u_out:
            a = (1 + u_out) * a + u_out * stored
    if reduction == "none":
        return np.asarray(a, dtype=np.float64)
    k = float((np.asarray(q) != 0).sum())
    w = 1.0 / a.shape[0] if reduction == "mean" else 1.0
    total = w * (1 + float(_gamma_u(k + 1, u))) * float(a.sum()) + tiny
    return np.asarray(total, dtype=np.float64)


def cross_entropy_shift_perturbation(
    spread: NDArray[Any], mass: NDArray[Any], reduction: Reduction
) -> Float64Array:
    r"""How far the exact loss moves when each row's logits move by at most ``spread`` (N,)
    (a check's own rounding :math:`\delta` of :math:`x + c`, exact by TwoSum): by the mean
    value theorem :math:`|\ell_i(x + \delta) - \ell_i(x)| = |\langle S p(\xi) - q,
    \delta\rangle| \le 2S\|\delta\|_\infty`; reduced, :math:`w\sum_i 2S_i\|\delta_i\|_\infty`.
    ``mass``: the rows' S (N,)."""
    d = 2 * np.asarray(spread, dtype=np.float64) * np.asarray(mass, dtype=np.float64)
    if reduction == "none":
        return d
    w = 1.0 / d.shape[0] if reduction == "mean" else 1.0
    return np.asarray(w * float(d.sum()), dtype=np.float64)


def cross_entropy_batch_bound(
    x: NDArray[Any],
    q: NDArray[Any],
    ell: NDArray[Any],
    dtype: DTypeLike,
    reduction: Reduction,
    alone: NDArray[Any],
    *,
    accumulate: Accumulation = "float32",
) -> Float64Array:
    r"""The loss of the batch against the reduction of each row's loss alone (a batch of one):

    .. math:: B(x) + w\sum_i B^{(1)}_i + \gamma^{(64)}_2 w \sum_i |\hat\ell^{(i)}|

    both within their bounds of the same exact value (:math:`B^{(1)}_i` the one-row loss's,
    ``cross_entropy_loss_bound`` of that row); the check reduces the N values itself, with
    ``math.fsum`` and a division. ``alone``: those N computed values. Reduction none (or a
    loss per row): :math:`A_i + B^{(1)}_i` row by row."""
    x64, q64, ell64 = (np.asarray(a, dtype=np.float64) for a in (x, q, ell))
    n = x64.shape[0]
    ones = cross_entropy_alone_bound(x64, q64, ell64, dtype, accumulate=accumulate)
    whole = cross_entropy_loss_bound(x64, q64, ell64, dtype, reduction, accumulate=accumulate)
    if reduction == "none":
        rows: Float64Array = whole + ones
        return rows
    w = 1.0 / n if reduction == "mean" else 1.0
    own = float(gamma(2, F64)) * w * float(np.abs(np.asarray(alone, np.float64)).sum())
    return np.asarray(float(whole) + w * float(ones.sum()) + own, dtype=np.float64)


def cross_entropy_row_sum_bound(tau: NDArray[Any], dx_hat: NDArray[Any]) -> Float64Array:
    r"""Per row, :math:`|\sum_j \hat{dx}_j| \le \sum_j \tau_j + \gamma^{(64)}_C\sum_j
    |\hat{dx}_j| + C\sigma_{64}`: the exact row sum :math:`c(S\sum_j p_j - S)` is 0 for
    every q (the loss is shift invariant); the check sums in float64."""
    t64 = np.asarray(tau, dtype=np.float64)
    d64 = np.abs(np.asarray(dx_hat, dtype=np.float64))
    c = t64.shape[-1]
    sub = float(np.finfo(np.float64).smallest_subnormal)
    out: Float64Array = t64.sum(axis=-1) + gamma(c, F64) * d64.sum(axis=-1) + c * sub
    return out


def cross_entropy_difference_step(bound: float, weight: float, dtype: DTypeLike) -> float:
    r"""The step h of a central difference of one row's loss along one logit: the power of
    two nearest the minimiser of :math:`|c|Sh^2/(36\sqrt 3) + \hat A/h` (the truncation with
    :math:`\ell''' \le S/(6\sqrt 3)` over 6, plus the loss's rounding at both points over
    the width 2h), :math:`h^3 = 18\sqrt3\,\hat A/(|c|S)`. ``bound``: the row's loss bound
    :math:`\hat A` times :math:`|c|`; ``weight``: :math:`|c|S`. A floor of :math:`2^4u`
    keeps h above the rounding of x's own grid. About :math:`2^{-5}` in float32 and
    :math:`2^{-14}` in float64 for a row of 10 classes (the softmax kinds' step, the
    same cube root of the unit roundoff).

    A ceiling of 1: the minimiser exceeds it only where :math:`\hat A/(|c|S) >
    1/(18\sqrt3)` (long float16 rows, and every row whose bound is vacuous, ``VACUOUS``:
    float16 rows past about 900 classes under ``accumulate="input"``). The tolerance,
    truncation plus rounding over the width, holds for every h, so the ceiling gives up
    only the optimum there; a larger step would move x + h out of the dtype's range
    (float16 ends at 65504), where the loss is inf and the difference NaN."""
    u = unit_roundoff(dtype)
    ratio = bound / weight if weight > 0 else 16 * u
    h = (18 * math.sqrt(3) * max(ratio, 16 * u)) ** (1 / 3)
    return float(min(2.0 ** round(math.log2(h)), 1.0))
