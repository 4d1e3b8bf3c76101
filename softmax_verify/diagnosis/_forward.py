r"""The catalogue of known-wrong forwards, dtype changes and mutation, and how each is tested.

The correct output is the float64 reference :math:`C` with tolerance
:math:`\tau_C` = tolerances.reference_forward_bound (what matches_reference allows).
A formula :math:`F` is computed in float64 and given the bound of a correct computation
of itself, :math:`\tau_F` = reference_forward_bound at F (per normalisation group), plus,
for a formula with an estimated parameter p, the parameter's effect
:math:`2\max_\pm |F(p(1 \pm \delta)) - F(p)|`, :math:`\delta` a bound on the estimate's
relative error derived with each estimate below.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
from numpy.typing import NDArray

from softmax_verify.core.options import Accumulation
from softmax_verify.core.oracle import f64 as _f64
from softmax_verify.core.oracle import softmax as _exact
from softmax_verify.diagnosis._match import Tally, shortest
from softmax_verify.diagnosis._probes import Observation, exp_limit
from softmax_verify.tolerances import (
    forward_error_bound,
    log_output_error,
    reference_forward_bound,
    row_sum_bound,
    unit_roundoff,
)

__all__ = ["FORWARD_FIX", "forward_findings"]

F64 = NDArray[np.float64]
#: The half-precision accumulation model of every tolerance here: the loosest, whatever
#: model the run's checks assumed, so that code correct under any model is never told apart
#: from the correct formula (the proof standard, ``_match``). float32 and float64 have one.
_MODEL: Accumulation = "input-worst-case"
#: Where exp overflows: log of the dtype's max.
LIMITS = ", ".join(
    f"{exp_limit(np.dtype(t)):.1f} in {np.dtype(t).name}" for t in (np.float64, np.float32)
)
FORWARD_FIX = "e = np.exp(x - x.max(axis=-1, keepdims=True)); y = e / e.sum(axis=-1, keepdims=True)"


def _usable(observations: list[Observation]) -> list[tuple[Observation, F64]]:
    return [(o, o.y) for o in observations if o.y is not None]


def _tally(
    observations: list[Observation],
    formula: Callable[[F64], tuple[F64, F64]],
) -> Tally:
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
        tally.add(
            obs.probe.label,
            obs.y,
            value,
            tol,
            c,
            reference_forward_bound(x, c, dt, accumulate=_MODEL),
        )
    return tally


def _grouped(x: F64, dtype: np.dtype[Any], axis: int | None) -> tuple[F64, F64]:
    """Softmax over ``axis`` (0: columns; None: the whole matrix) and its bound."""
    if axis is None:
        flat = x.reshape(1, -1)
        f = _exact(flat)
        return f.reshape(x.shape), reference_forward_bound(
            flat, f, dtype, accumulate=_MODEL
        ).reshape(x.shape)
    f = _exact(x.T)
    return f.T, reference_forward_bound(x.T, f, dtype, accumulate=_MODEL).T


def _naive(x: F64, dtype: np.dtype[Any]) -> tuple[F64, F64]:
    """``exp(x) / sum(exp(x))`` in ``dtype`` itself, where it overflows as the code does."""
    with np.errstate(all="ignore"):
        e = np.exp(x.astype(dtype))
        f = _f64(e / e.sum(axis=1, keepdims=True))
    c = _exact(x)
    return f, reference_forward_bound(x, c, dtype, accumulate=_MODEL)


def _sensitivity(formula: Callable[[float], F64], p: float, delta: float) -> F64:
    base = formula(p)
    with np.errstate(all="ignore"):
        out: F64 = 2 * np.maximum(
            np.abs(formula(p * (1 + delta)) - base), np.abs(formula(p * (1 - delta)) - base)
        )
    return out


def _epsilon(observations: list[Observation]) -> tuple[float, float] | None:
    r"""eps of :math:`y = e / (s + \epsilon)` (e = exp(x - max), s its row sum), and its
    relative error bound.

    Per row :math:`\epsilon = s (1 - \Sigma) / \Sigma` with :math:`\Sigma = \sum_i \hat y_i`,
    known within tolerances.row_sum_bound :math:`\beta`, so :math:`\epsilon` is within
    :math:`s\beta / (\Sigma - \beta)^2`. The row where that is smallest relative to
    :math:`\epsilon` gives the estimate.
    """
    best: tuple[float, float] | None = None
    for obs, y in _usable(observations):
        x = _f64(obs.probe.x)
        e = np.exp(x - x.max(axis=1, keepdims=True))
        s, total = e.sum(axis=1), y.sum(axis=1)
        beta = row_sum_bound(x.shape[1], obs.probe.x.dtype, accumulate=_MODEL)
        with np.errstate(all="ignore"):
            eps = s * (1 - total) / total
            err = s * beta / (total - beta) ** 2
        for value, bound in zip(eps, err, strict=True):
            usable = value > 0 and np.isfinite(value) and bound < 0.25 * value
            if usable and (best is None or bound / value < best[1]):
                best = (float(value), float(bound / value))
    return best


def _temperature(observations: list[Observation]) -> tuple[float, float] | None:
    r"""T of :math:`y = \mathrm{softmax}(x / T)` by least squares on :math:`\log y`.

    Per row, centred logits :math:`x^c` and centred :math:`\ell = \log\hat y`:
    :math:`T = \sum (x^c)^2 / \sum x^c \ell^c`. Each :math:`\log\hat y_i` is within
    :math:`\epsilon_i = 1.01(\eta_i + \lambda / y_i)` of the exact (as long as that is
    below 1%), centring doubles it, so T is within
    :math:`\delta = 2\sum |x^c|\epsilon / |\sum x^c\ell^c|` relative.
    """
    num = den = err = 0.0
    for obs, y in _usable(observations):
        x, dt = obs.probe.x, obs.probe.x.dtype
        with np.errstate(all="ignore"):
            eps = log_output_error(x, y, dt, accumulate=_MODEL)
            # Rows with an entry that underflowed (or is not finite) say too little about T.
            rows = (y > 0).all(axis=1) & (eps <= 0.01).all(axis=1)
            x64, y64 = _f64(x)[rows], y[rows]
            xc = x64 - x64.mean(axis=1, keepdims=True)
            lc = np.log(y64) - np.log(y64).mean(axis=1, keepdims=True)
        num += float((xc * xc).sum())
        den += float((xc * lc).sum())
        err += float((np.abs(xc) * 2 * eps[rows].max(axis=1, keepdims=True, initial=0.0)).sum())
    if not (den > 0 and num > 0):
        return None
    delta = err / den
    return (num / den, delta) if delta < 0.01 else None


def _clip_bounds(observations: list[Observation]) -> tuple[float | None, float | None]:
    """The clip bounds read off the output: the smallest raised and largest lowered value."""
    raised: list[float] = []
    lowered: list[float] = []
    for obs, y in _usable(observations):
        x = obs.probe.x
        c = _exact(x)
        tol = reference_forward_bound(x, c, x.dtype, accumulate=_MODEL)
        with np.errstate(invalid="ignore"):
            raised += y[y - c > tol].tolist()
            lowered += y[c - y > tol].tolist()
    return (min(raised) if raised else None, max(lowered) if lowered else None)


#: A catalogue entry's (id, summary, fix, tally) at one dtype.
Finding = tuple[str, str, str, Tally]


def forward_findings(
    moderate: list[Observation], large: list[Observation], dtype: np.dtype[Any]
) -> list[Finding]:
    """(id, summary, fix, tally) of every forward catalogue entry at one dtype."""
    out = [_no_max_shift(moderate, large, dtype), *_wrong_axes(moderate, dtype)]
    for fitted in (_epsilon_finding, _temperature_finding, _clipped_finding):
        found = fitted(moderate, dtype)
        if found is not None:
            out.append(found)
    if dtype == np.float64:
        out += _reduced_precision(moderate)
    return out


def _no_max_shift(
    moderate: list[Observation], large: list[Observation], dtype: np.dtype[Any]
) -> Finding:
    return (
        "no_max_shift",
        "the forward exponentiates x without subtracting the row maximum: exact for "
        "moderate logits, but exp overflows (inf / inf = NaN) for logits above about "
        f"{LIMITS} and underflows (0 / 0 = NaN) for a row of logits far below 0",
        FORWARD_FIX,
        _tally(moderate + large, lambda x: _naive(x, dtype)),
    )


def _row_shift_column_sum(x: F64, dtype: np.dtype[Any]) -> tuple[F64, F64]:
    r""":math:`e^{x - m_{row}}` normalised by each column's sum, computed in the dtype (a
    column of exps that all underflow gives 0 / 0 = NaN, as in the code), and its bound.

    Mathematically the softmax over each column of :math:`x' = x - m_{row}` (a column softmax
    is unchanged by the shift of its column's own maximum): a correct computation of it is
    within that column softmax's bound at :math:`x'`, plus the rounding of :math:`x'`
    itself, each entry moved by at most :math:`u|x'|`, which moves a softmax by a factor
    within :math:`e^{\pm 2\delta}`, :math:`\delta` the largest move in the column. Ours and
    the code's are each within that: twice it apart. Where ours is not finite, the code's
    must be the same.
    """
    with np.errstate(all="ignore"):
        shifted = (x - x.max(axis=1, keepdims=True)).astype(dtype)
        e = np.exp(shifted)
        value = _f64(e / e.sum(axis=0, keepdims=True, dtype=dtype))
    s64 = _f64(shifted)
    f = _exact(s64.T).T
    moved = unit_roundoff(dtype) * np.abs(s64).max(axis=0, keepdims=True)
    tol = reference_forward_bound(s64.T, f.T, dtype, accumulate=_MODEL).T + f * np.expm1(2 * moved)
    return value, np.where(np.isfinite(value), 2 * tol, 0.0)


def _wrong_axes(moderate: list[Observation], dtype: np.dtype[Any]) -> list[Finding]:
    found = [
        (
            "wrong_normalization_axis",
            f"the forward normalises {where} instead of along each row",
            FORWARD_FIX,
            _tally(moderate, partial(_grouped, dtype=dtype, axis=axis)),
        )
        for axis, where in (
            (0, "over each column (the batch axis)"),
            (None, "over the whole matrix"),
        )
    ]
    found.append(
        (
            "wrong_normalization_axis",
            "the forward subtracts each row's maximum, as it should, but sums the exps over "
            "each column (the batch axis) instead of along each row",
            FORWARD_FIX + " (the sum along axis=-1, as the maximum)",
            _tally(moderate, partial(_row_shift_column_sum, dtype=dtype)),
        )
    )
    return found


def _epsilon_finding(moderate: list[Observation], dtype: np.dtype[Any]) -> Finding | None:
    """y = e / (sum(e) + eps), with eps fitted to the outputs (None when none fits)."""
    eps = _epsilon(moderate)
    if eps is None:
        return None
    value, delta = eps

    def with_eps(x: F64) -> tuple[F64, F64]:
        e = np.exp(x - x.max(axis=1, keepdims=True))
        s = e.sum(axis=1, keepdims=True)

        def f(p: float) -> F64:
            out: F64 = e / (s + p)
            return out

        return f(value), reference_forward_bound(
            x, f(value), dtype, accumulate=_MODEL
        ) + _sensitivity(f, value, delta)

    return (
        "epsilon_in_denominator",
        f"the forward adds epsilon = {shortest(value, delta)} to the row sum: "
        f"y = e / (sum(e) + {shortest(value, delta)}), so rows sum to less than 1",
        FORWARD_FIX + " (after the shift the row sum is at least 1: nothing to guard)",
        _tally(moderate, with_eps),
    )


def _temperature_finding(moderate: list[Observation], dtype: np.dtype[Any]) -> Finding | None:
    """softmax(x / T), with T fitted to the outputs (None when none fits)."""
    temp = _temperature(moderate)
    if temp is None:
        return None
    t, delta = temp
    u = unit_roundoff(dtype)

    def tempered(x: F64) -> tuple[F64, F64]:
        def f(p: float) -> F64:
            return _exact(x / p)

        scaled = x / t
        spread = np.abs(scaled).max(axis=1, keepdims=True)
        tol = (
            reference_forward_bound(scaled, f(t), dtype, accumulate=_MODEL) + f(t) * 2 * u * spread
        )
        return f(t), tol + _sensitivity(f, t, delta)

    return (
        "temperature",
        f"the forward computes softmax(x / T) with a temperature T = {shortest(t, delta)}",
        FORWARD_FIX + " (no division of x by a temperature)",
        _tally(moderate, tempered),
    )


def _clipped_finding(moderate: list[Observation], dtype: np.dtype[Any]) -> Finding | None:
    """Probabilities clipped to bounds read off the outputs (None when none are)."""
    lo, hi = _clip_bounds(moderate)
    if lo is None and hi is None:
        return None
    # As the dtype prints them (shortest round trip): the constants the code was given.
    low = "-inf" if lo is None else str(dtype.type(lo))
    bounds = f"[{low}, {'inf' if hi is None else str(dtype.type(hi))}]"

    def clipped(x: F64) -> tuple[F64, F64]:
        c = _exact(x)
        f: F64 = np.clip(c, -np.inf if lo is None else lo, np.inf if hi is None else hi)
        return f, reference_forward_bound(x, np.maximum(c, f), dtype, accumulate=_MODEL)

    return (
        "clipped_probabilities",
        f"the forward clips its probabilities to {bounds}, so they no longer sum to 1",
        FORWARD_FIX + " (unclipped; clip where a log is taken, in the loss)",
        _tally(moderate, clipped),
    )


def _reduced_precision(moderate: list[Observation]) -> list[Finding]:
    r"""float64 output that is only float32-accurate, in either of its two telltale forms.

    - *computed in float32*: every output entry is a float32 value, and within the float32
      forward bound of the exact result: F is the output itself rounded to float32 (so
      :math:`	au_F = 0`: it must already be float32), checked against the reference
      within twice :math:`\eta^{(32)} y + \lambda_{32}` (both the code and the reference
      rounded to float32 meet that bound);
    - *logits cast to float32*: F is the float64 reference at x rounded to float32, with
      the float64 bound at those logits.

    Either "differs" where the output misses the float64 bound, which a correct float64
    forward never does.
    """
    computed, cast = Tally(), Tally()
    for obs in moderate:
        if obs.y is None or obs.y_dtype != np.float64:
            computed.fail()
            cast.fail()
        else:
            _add_reduced(obs, obs.y, computed, cast)
    summary = "the float64 results carry float32-sized errors: the forward "
    fix = FORWARD_FIX + ", all in x's dtype (no astype(np.float32), no float32 buffers)"
    return [
        (
            "reduced_precision",
            summary + "computes in float32 and casts the result back",
            fix,
            computed,
        ),
        ("reduced_precision", summary + "rounds the logits to float32 first", fix, cast),
    ]


def _within(a: F64, b: F64, tol: F64) -> bool:
    """``|a - b| <= tol`` everywhere, NaN against NaN and equal infinities agreeing."""
    with np.errstate(invalid="ignore"):
        agree = (np.abs(a - b) <= tol) | (a == b) | (np.isnan(a) & np.isnan(b))
    return bool(np.all(agree))


def _add_reduced(obs: Observation, y: F64, computed: Tally, cast: Tally) -> None:
    """One float64 output ``y`` against both forms of ``_reduced_precision``.

    Logits beyond float32's range become infinite in float32, and a float32 computation
    gives what softmax gives there (a NaN row for +inf, probability 0 for -inf): on such
    rows both forms expect the softmax of the logits rounded to float32, so that a failure
    found at huge logits (finite_for_finite_input's) is explained by the same formula.
    """
    f32 = np.dtype(np.float32)
    x = obs.probe.x
    c = _exact(x)
    tol_c = reference_forward_bound(x, c, np.float64, accumulate=_MODEL)
    missed = bool(np.any(~(np.abs(y - c) <= tol_c)))
    with np.errstate(over="ignore"):  # beyond float32's range: inf
        as32 = _f64(y.astype(np.float32))
        x32 = _f64(x.astype(np.float32))
    f = _exact(x32)
    wide = ~np.isfinite(x32).all(axis=1, keepdims=True)  # rows float32 cannot hold
    expected = np.where(wide, f, c)
    with np.errstate(invalid="ignore"):
        tol_32 = forward_error_bound(np.where(wide, x32, x), expected, f32, accumulate=_MODEL)
    near = _within(y, expected, 2 * tol_32)
    computed.add(
        obs.probe.label, y, as32 if near else c + np.inf, np.zeros_like(c), c, tol_c, differs=missed
    )
    cast.add(
        obs.probe.label,
        y,
        f,
        reference_forward_bound(x32, f, np.float64, accumulate=_MODEL),
        c,
        tol_c,
        differs=missed,
    )
