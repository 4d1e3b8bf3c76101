r"""The cross-entropy catalogue's known-wrong formulas, each with its derived tolerance, and the
tallies that hold them to the match rule of ``_match`` (every probe, and different from the
correct loss beyond :math:`\tau_F + \tau_C` on at least three).

A formula takes a probe and whether the code returned one loss per row, and gives its value
(per row, or the batch mean) and tolerance, both float64. The probes are float32 and float64
only, where the half-precision accumulation model changes no bound: each bound states the
default, ``accumulate="float32"``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from softmax_verify.core import cross_entropy as ce
from softmax_verify.core.options import Reduction
from softmax_verify.core.oracle import log_softmax, softmax
from softmax_verify.diagnosis._loss_probes import (
    LossObservation,
    LossProbe,
    correct_loss,
    targets_of,
)
from softmax_verify.diagnosis._match import Tally
from softmax_verify.tolerances import (
    cross_entropy_row_bound,
    forward_relative_bound,
    reference_cross_entropy_backward_bound,
    reference_cross_entropy_loss_bound,
)

__all__ = [
    "ALL_FAMILIES",
    "Formula",
    "clipped",
    "label_indexing",
    "log_of_softmax",
    "no_max_shift",
    "sign_flipped",
    "tally_dx_scaled",
    "tally_loss",
]

F64 = NDArray[np.float64]
Formula = Callable[[LossProbe, bool], tuple[F64, F64]]
ALL_FAMILIES = ("moderate", "large", "gaps", "confident")


def _rows_of(p: LossProbe) -> NDArray[np.intp]:
    return np.arange(p.x.shape[0])


def _both_bounds(p: LossProbe, rows: F64) -> F64:
    """A row loss's bound at ``p.x``'s dtype plus the float64 oracle's own."""
    q = targets_of(p)
    own = cross_entropy_row_bound(p.x, q, rows, p.x.dtype, accumulate="float32")
    return own + cross_entropy_row_bound(p.x, q, rows, np.float64, accumulate="float32")


def _eta(p: LossProbe) -> F64:
    """The relative error bound of a computed probability at each row's label."""
    out: F64 = forward_relative_bound(p.x, p.x.dtype, accumulate="float32")[_rows_of(p), p.labels]
    return out


def _reduced(value: F64, bound: F64, per_row: bool) -> tuple[F64, F64]:
    """Per-row formula values as returned: per row, or their mean (inf propagates exactly)."""
    if per_row:
        return value, bound
    if np.isinf(value).any() or np.isnan(value).any():
        return np.asarray(value.mean()), np.asarray(0.0)
    return np.asarray(value.mean()), np.asarray(bound.mean())


def tally_loss(
    observations: list[LossObservation],
    formula: Formula,
    families: tuple[str, ...] = ALL_FAMILIES,
) -> Tally:
    """``formula``'s tally over the loss of every observation in ``families``."""
    t = Tally()
    for o in observations:
        if o.probe.family not in families:
            continue
        if o.loss is None:
            t.fail()
            continue
        per_row = o.loss.ndim == 1
        with np.errstate(all="ignore"):
            f, tf = formula(o.probe, per_row)
        c, tc = correct_loss(o.probe, per_row)
        t.add(o.probe.label, o.loss, f, tf, c, tc)
    return t


def label_indexing(divisor: str) -> Formula:
    r""":math:`-\frac1D\sum_i\sum_k \log p_{i, y_k}` (every row at every label), D = N·N
    (``np.mean`` of the (N, N) array) or N (``np.sum(...) / N``). It is exactly the mean
    cross-entropy of the N·N rows :math:`(x_i, y_k)` (times N for the /N form), so its
    tolerance is that batch's reference bound (times N). A per-row output is not this
    mistake (its value is NaN: never a match)."""

    def formula(p: LossProbe, per_row: bool) -> tuple[F64, F64]:
        n = p.x.shape[0]
        if per_row:
            return np.full(n, np.nan), np.zeros(n)
        x_rep = np.repeat(p.x, n, axis=0)
        q = ce.targets(np.tile(p.labels, n), p.x.shape[1])
        rows = ce.row_losses(x_rep, q)
        scale = 1.0 if divisor == "N*N" else float(n)
        bound = reference_cross_entropy_loss_bound(
            x_rep, q, rows, p.x.dtype, "mean", accumulate="float32"
        )
        return ce.reduce(rows, "mean") * scale, bound * scale

    return formula


def no_max_shift(form: str) -> Formula:
    """The unshifted loss evaluated in the dtype itself, where it overflows as the code does:
    ``log(sum(exp(x))) - x[y]`` (``"lse"``) or ``-log(exp(x)[y] / sum(exp(x)))``
    (``"softmax"``). Where the dtype's value is inf or NaN it must match exactly; elsewhere
    the correct bound plus the probability's relative error; where the unshifted p_y is
    subnormal (``"softmax"``), the code's rounding there is not this formula's: no evidence
    either way (tolerance inf)."""

    def formula(p: LossProbe, per_row: bool) -> tuple[F64, F64]:
        idx = _rows_of(p)
        with np.errstate(all="ignore"):
            e = np.exp(p.x)
            s = e.sum(axis=1)
            if form == "lse":
                rows = (np.log(s) - p.x[idx, p.labels]).astype(p.x.dtype)
            else:
                rows = (-np.log(e[idx, p.labels] / s)).astype(p.x.dtype)
            p_y = (e[idx, p.labels] / s).astype(np.float64)
        rows64 = rows.astype(np.float64)
        exact = ce.row_losses(p.x, targets_of(p))
        tc = _both_bounds(p, exact) + 2 * _eta(p)
        finite = np.isfinite(rows64)
        loose = finite & (p_y < float(np.finfo(p.x.dtype).smallest_normal))
        if form == "lse":
            loose = np.zeros_like(finite)
        value = np.where(finite, exact, rows64)
        bound = np.where(loose, np.inf, np.where(finite, tc, 0.0))
        if not per_row and not finite.all():
            return np.asarray(rows64.mean()), np.asarray(0.0)
        return _reduced(value, bound, per_row)

    return formula


def clipped(lo: float, hi: float | None, plus: bool) -> Formula:
    r"""``-log(p_y + lo)`` (``plus``) or ``-log(clip(p_y, lo, hi))``. Tolerance: the correct
    bound at the formula's value plus the effect of the estimate's error (twice the largest
    move of the formula when lo moves by 1e-3 relative, far above the estimate's own error
    bound: ``_loss.estimate_epsilon``)."""

    def rows_of(p: LossProbe, eps: float) -> F64:
        pr = softmax(p.x)[_rows_of(p), p.labels]
        out: F64 = -np.log(pr + eps) if plus else -np.log(np.clip(pr, eps, hi or np.inf))
        return out

    def formula(p: LossProbe, per_row: bool) -> tuple[F64, F64]:
        rows = rows_of(p, lo)
        move = np.maximum(
            np.abs(rows_of(p, lo * (1 + 1e-3)) - rows), np.abs(rows_of(p, lo * (1 - 1e-3)) - rows)
        )
        return _reduced(rows, _both_bounds(p, rows) + 2 * move, per_row)

    return formula


def log_of_softmax(p: LossProbe, per_row: bool) -> tuple[F64, F64]:
    r"""``-log(p_y)`` with p_y the softmax rounded to the dtype (subnormals kept): where p_y
    is below a quarter of the smallest subnormal it rounds to 0 however computed, F = +inf,
    matched exactly; where p_y is subnormal the code may return anything from
    :math:`-\log\lambda` to inf (tolerance inf: no evidence either way); where p_y is normal,
    the correct bound plus the relative error of a computed probability (eta)."""
    idx = _rows_of(p)
    log_py = log_softmax(p.x)[idx, p.labels]  # the log domain: p_y may be 0 even in float64
    tiny = np.finfo(p.x.dtype)
    subnormal_min = float(tiny.smallest_subnormal)
    gone = log_py < np.log(subnormal_min) - np.log(4.0)
    subnormal = log_py < np.log(float(tiny.smallest_normal))
    rows = ce.row_losses(p.x, targets_of(p))
    bound = _both_bounds(p, rows) + 2 * _eta(p)
    value = np.where(gone, np.inf, rows)
    bound = np.where(gone, 0.0, np.where(subnormal, np.inf, bound))
    return _reduced(value, bound, per_row)


def sign_flipped(p: LossProbe, per_row: bool) -> tuple[F64, F64]:
    """The log-likelihood: minus the correct loss, within the same bound."""
    c, tc = correct_loss(p, per_row)
    return -c, tc


def tally_dx_scaled(
    observations: list[LossObservation], k_of: Callable[[int], float], reduction: Reduction
) -> Tally:
    """dx on the moderate probes (N = 2 .. 7) against ``k_of(N)`` times the gradient of
    ``reduction`` at the upstream 1, within k times its bound. A constant factor (a scaled
    backward) cannot match N times on every N, and N = 1 would not tell the two apart."""
    t = Tally()
    for o in observations:
        if o.probe.family != "moderate":
            continue
        if o.dx is None:
            t.fail()
            continue
        p = o.probe
        q = targets_of(p)
        one = np.ones((), dtype=np.float64)
        c = ce.vjp(p.x, q, reduction, one)
        weights = ce.weights(p.x.shape[0], reduction, one)
        tc = reference_cross_entropy_backward_bound(
            p.x, q, weights, p.x.dtype, accumulate="float32"
        )
        k = float(k_of(p.x.shape[0]))
        t.add(p.label, o.dx, k * c, k * tc, c, tc)
    return t
