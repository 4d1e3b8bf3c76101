r"""The catalogue of known-wrong log_softmax forwards, and how each is tested.

The correct output is the float64 reference :math:`C = x - m - \log\sum_j e^{x_j - m}` with
tolerance :math:`\tau_C` = tolerances.reference_log_softmax_bound (what matches_reference
allows: absolute). Each formula F comes with the bound :math:`\tau_F` of a correct
computation of itself, derived below with each; the proof standard is the softmax
catalogue's (``_match``). The probes: the moderate and large ones of every catalogue, and
rows whose probabilities underflow the dtype (``_probes.spread_probes``), where
``log(softmax(x))`` shows.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
from numpy.typing import NDArray

from softmax_verify.core.dtypes import finfo
from softmax_verify.core.options import Accumulation
from softmax_verify.core.oracle import f64 as _f64
from softmax_verify.core.oracle import log_softmax as _exact
from softmax_verify.core.oracle import softmax as _softmax
from softmax_verify.diagnosis._match import Tally
from softmax_verify.diagnosis._probes import Observation, exp_limit
from softmax_verify.tolerances import (
    forward_relative_bound,
    gamma,
    log_softmax_error_bound,
    reference_log_softmax_bound,
    unit_roundoff,
)

__all__ = ["LOG_FORWARD_FIX", "forward_findings"]

F64 = NDArray[np.float64]
#: The loosest model, as in the softmax catalogue (its ``_MODEL``).
_MODEL: Accumulation = "input-worst-case"
LOG_FORWARD_FIX = (
    "z = x - x.max(axis=-1, keepdims=True); z = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))"
)
#: A catalogue entry's (id, summary, fix, tally) at one dtype.
Finding = tuple[str, str, str, Tally]


def _tally(observations: list[Observation], formula: Callable[[F64], tuple[F64, F64]]) -> Tally:
    """Match ``formula(x) -> (F, tau_F)`` against the forward on every probe."""
    tally = Tally()
    for obs in observations:
        if obs.y is None:
            tally.fail()
            continue
        x, dt = obs.probe.x, obs.probe.x.dtype
        c = _exact(x)
        with np.errstate(all="ignore"):
            value, tol = formula(_f64(x))
            tol_c = reference_log_softmax_bound(x, c, dt, accumulate=_MODEL)
        tally.add(obs.probe.label, obs.y, value, tol, c, tol_c)
    return tally


def _log_of_softmax(x: F64, dtype: np.dtype[Any]) -> tuple[F64, F64]:
    r"""``log(softmax(x))``: the log of a correct softmax in the dtype.

    Where the exact probability is at least the dtype's smallest normal :math:`\lambda`, a
    correct softmax is within :math:`\eta y + \lambda` of it, so its log within
    :math:`-\log(1 - \eta - \lambda/y)` (``inf`` where that is not below 1) of :math:`\log y`.
    Where it is below a quarter of the smallest subnormal :math:`\sigma`, a correct softmax
    returns exactly 0 (within :math:`\eta y` it rounds to 0, or flushes), and the log is
    ``-inf``. In between it may be 0 or a subnormal: any value is accepted there.
    """
    y = _softmax(x)
    info = finfo(dtype)
    lam, sigma = float(info.smallest_normal), float(info.smallest_subnormal)
    eta = forward_relative_bound(x, dtype, accumulate=_MODEL)
    with np.errstate(all="ignore"):
        relative = eta + lam / y
        tol = np.where(relative < 1, -np.log1p(-relative), np.inf)
        value = np.where(4 * y < sigma, -np.inf, np.log(y))
    tol = np.where((y < lam) & (4 * y >= sigma), np.inf, tol)
    return value, np.where(4 * y < sigma, 0.0, tol)


def _naive(x: F64, dtype: np.dtype[Any]) -> tuple[F64, F64]:
    r"""``x - log(sum(exp(x)))`` in the dtype itself, overflowing as the code does.

    Computed here in the dtype (numpy's operations); a code of the same formula differs
    from it only in its roundings: each is within :math:`\gamma_{D+4} + 2u|L|(1 + u) + u|z|
    + D\lambda/\hat s` of the exact z (the row sum's additions and exps, log's two ulps
    of :math:`L = \log\hat s`, the final subtraction, terms that underflow), so the two within
    twice that.
    """
    u = unit_roundoff(dtype)
    lam = float(finfo(dtype).smallest_normal)
    d = x.shape[1]
    with np.errstate(all="ignore"):
        xd = x.astype(dtype)
        s = np.exp(xd).sum(axis=1, keepdims=True, dtype=dtype)
        big = np.log(s)
        value = _f64(xd - big)
        own = gamma(d + 4, dtype) + 2 * u * np.abs(_f64(big)) * (1 + u) + u * np.abs(value)
        own = own + d * lam / _f64(s)
    return value, np.where(np.isfinite(value), 2 * own, 0.0)


def _row_shift_sum_over(x: F64, dtype: np.dtype[Any], axis: int | None) -> tuple[F64, F64]:
    r""":math:`x - m_{row} - \log \sum e^{x - m_{row}}` with the sum over ``axis`` (0: each
    column; None: the whole matrix) instead of each row.

    Computed here in the dtype (a group whose exps all underflow gives -inf - -inf = NaN or
    +inf, as in the code). It is the log_softmax over that group of :math:`x' = x - m_{row}`
    (a group's log_softmax is unchanged by a shift of the group), so a correct computation of
    it is within that group's a (tolerances.log_softmax_error_bound, over the group), plus
    the rounding of :math:`x'` itself: each entry moved by at most :math:`u|x'|`, which moves
    the group's log-sum-exp by at most the largest move and the entry by its own: twice the
    largest. Ours and the code's are each within that: twice it apart; where ours is not
    finite, the code's must be the same.
    """
    with np.errstate(all="ignore"):
        shifted = (x - x.max(axis=1, keepdims=True)).astype(dtype)
        total = np.exp(shifted).sum(axis=axis, keepdims=True, dtype=dtype)
        value = _f64(shifted - np.log(total))
    s64 = _f64(shifted)
    groups = s64.reshape(1, -1) if axis is None else s64.T
    z = _exact(groups)
    tol = reference_log_softmax_bound(groups, z, dtype, accumulate=_MODEL)
    tol = tol + 2 * unit_roundoff(dtype) * np.abs(groups).max(axis=1, keepdims=True)
    tol = tol.reshape(x.shape) if axis is None else tol.T
    return value, np.where(np.isfinite(value), 2 * tol, 0.0)


def _reduced_precision(observations: list[Observation]) -> Tally:
    r"""float64 output that is only float32-accurate: every entry a float32 value (F is the
    output rounded to float32, :math:`\tau_F = 0`) and within twice float32's a of the
    exact; or, on rows whose logits float32 cannot hold, what the log_softmax of those
    logits rounded to float32 is (NaN for +inf). Differs where the float64 bound is missed,
    which a correct float64 forward never does."""
    f32 = np.dtype(np.float32)
    tally = Tally()
    for obs in observations:
        if obs.y is None or obs.y_dtype != np.float64:
            tally.fail()
            continue
        x, y = obs.probe.x, obs.y
        c = _exact(x)
        tol_c = reference_log_softmax_bound(x, c, np.float64, accumulate=_MODEL)
        with np.errstate(all="ignore"):
            as32 = _f64(y.astype(np.float32))
            x32 = _f64(x.astype(np.float32))
            wide = ~np.isfinite(x32).all(axis=1, keepdims=True)
            expected = np.where(wide, _exact(x32), c)
            bound = 2 * log_softmax_error_bound(x, c, f32, accumulate=_MODEL)
            agree = (np.abs(y - expected) <= bound) | (y == expected)
            agree |= np.isnan(y) & np.isnan(expected)
            missed = bool(np.any(~(np.abs(y - c) <= tol_c)))
        value = as32 if bool(agree.all()) else c + np.inf
        tally.add(obs.probe.label, y, value, np.zeros_like(c), c, tol_c, differs=missed)
    return tally


def forward_findings(
    moderate: list[Observation], large: list[Observation], dtype: np.dtype[Any]
) -> list[Finding]:
    """(id, summary, fix, tally) of every log_softmax forward catalogue entry at one dtype;
    ``large`` holds the probes beyond exp's range and those whose probabilities underflow."""
    limits = f"{exp_limit(np.dtype(np.float64)):.1f} in float64, " + (
        f"{exp_limit(np.dtype(np.float32)):.1f} in float32"
    )
    out: list[Finding] = [
        (
            "log_of_softmax",
            "the forward takes the log of a softmax: log(softmax(x)) is -inf wherever the "
            "probability underflows (a logit far below its row's maximum), where "
            "log_softmax is finite",
            LOG_FORWARD_FIX,
            _tally(moderate + large, lambda x: _log_of_softmax(x, dtype)),
        ),
        (
            "logsumexp_cancellation",
            "the forward computes x - log(sum(exp(x))) without subtracting the row maximum: "
            f"exp overflows for logits above about {limits} (z = -inf or NaN), the sum "
            "underflows for a row far below 0 (z = +inf), and x - logsumexp(x) cancels for "
            "large logits, an error of about u * |x|",
            LOG_FORWARD_FIX,
            _tally(moderate + large, lambda x: _naive(x, dtype)),
        ),
    ]
    for axis, where in ((0, "over each column (the batch axis)"), (None, "over the whole batch")):
        out.append(
            (
                "wrong_normalization_axis",
                "the forward subtracts each row's maximum, as it should, but sums the exps "
                f"{where} instead of along each row",
                LOG_FORWARD_FIX + " (the sum along axis=-1, as the maximum)",
                _tally(moderate, partial(_row_shift_sum_over, dtype=dtype, axis=axis)),
            )
        )
    if dtype == np.float64:
        out.append(
            (
                "reduced_precision",
                "the float64 results carry float32-sized errors: the forward computes in "
                "float32 and casts the result back",
                LOG_FORWARD_FIX + ", all in x's dtype (no astype(np.float32), no float32 buffers)",
                _reduced_precision(moderate),
            )
        )
    return out
