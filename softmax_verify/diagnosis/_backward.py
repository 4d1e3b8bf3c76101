r"""The catalogue of known-wrong backward formulas, and how each is tested.

Every formula is evaluated in float64 at the implementation's own forward output
:math:`y` (what its backward receives) and upstream :math:`g`; the correct one is
:math:`C = y \odot (g - \langle g, y\rangle)`.

Tolerance, per entry, for a formula :math:`F` built from :math:`y`, :math:`g`, :math:`x`
by products and sums (tolerances.formula_bound, derived there; the same running-error
argument as tolerances.backward_error_bound):

.. math:: \tau_F = (8\eta + \gamma_n + \gamma^{(64)}_n)\,|F|_{abs} + n\lambda(1 + \|g\|_\infty)

- :math:`|F|_{abs}`: the formula evaluated with every term replaced by its absolute value
  (Higham's bound: rounding errors are relative to the terms, not to their sum);
- :math:`8\eta`, :math:`\eta` the row's largest ``forward_relative_bound``: the backward may
  re-derive y from its cache (both within :math:`\eta` of the exact, so :math:`2\eta` apart),
  y enters up to squared (:math:`4\eta`), and through ``softmax(y)`` twice that;
- :math:`\gamma_n`, :math:`n = ND + D + 16`: the roundings of any sum over at most the
  batch, a few products and the output, in the dtype and again in float64 here;
- :math:`n\lambda(1 + \|g\|_\infty)`: underflow below the normal range (flushed or not).

``scaled_backward`` estimates k by least squares, :math:`k = \langle a, C\rangle /
\langle C, C\rangle`; since :math:`|a - kC| \le |k|\tau_C`, the estimate is off by at most
:math:`\Delta k = \max(|k|, 1)\sum|C|\tau_C / \langle C, C\rangle`, whose effect
:math:`2|C|\Delta k` is added to its tolerance.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from softmax_verify.core.options import Accumulation
from softmax_verify.core.oracle import softmax
from softmax_verify.diagnosis._match import Tally
from softmax_verify.diagnosis._probes import Observation
from softmax_verify.tolerances import formula_bound

__all__ = [
    "BACKWARD_FIX",
    "CATALOGUE",
    "BackwardEntry",
    "Formula",
    "Tolerance",
    "correct",
    "tally_fixed",
    "tally_scaled",
    "tolerance",
]

F64 = NDArray[np.float64]
#: The half-precision accumulation model of every tolerance here: the loosest, whatever
#: model the run's checks assumed, so that code correct under any model is never told apart
#: from the correct formula (the proof standard, ``_match``). float32 and float64 have one.
_MODEL: Accumulation = "input-worst-case"
BACKWARD_FIX = "dx = y * (dout - (dout * y).sum(axis=-1, keepdims=True))"
#: (value, absolute-value form) of a formula at x, y, g.
Formula = Callable[[F64, F64, F64], tuple[F64, F64]]


def _rs(a: F64) -> F64:
    out: F64 = a.sum(axis=1, keepdims=True)
    return out


def correct(x: F64, y: F64, g: F64) -> tuple[F64, F64]:
    """:math:`y (g - \\langle g, y\\rangle)` and its absolute-value form."""
    return y * (g - _rs(g * y)), np.abs(y) * (np.abs(g) + _rs(np.abs(g * y)))


def tolerance(abs_form: F64, x: NDArray[Any], g: F64, dtype: np.dtype[Any]) -> F64:
    """:math:`\\tau_F` of the module docstring (``tolerances.formula_bound``)."""
    return formula_bound(abs_form, x, g, dtype, accumulate=_MODEL)


def _softmax_of(y: F64) -> F64:
    out: F64 = softmax(y)
    return out


def _at_output(x: F64, y: F64, g: F64) -> tuple[F64, F64]:
    return correct(x, _softmax_of(y), g)


def _batch(axis: int | None) -> Formula:
    def formula(x: F64, y: F64, g: F64) -> tuple[F64, F64]:
        s = (g * y).sum(axis=axis, keepdims=True)
        sa = np.abs(g * y).sum(axis=axis, keepdims=True)
        return y * (g - s), np.abs(y) * (np.abs(g) + sa)

    return formula


@dataclass(frozen=True)
class BackwardEntry:
    """A known-wrong backward: id, what the code does, and the formula."""

    id: str
    summary: str
    formula: Formula
    fix: str = BACKWARD_FIX


CATALOGUE: tuple[BackwardEntry, ...] = (
    BackwardEntry(
        "diagonal_only",
        "the backward keeps only the Jacobian's diagonal, dx = dout * y * (1 - y), and drops "
        "the cross terms -y_i * y_j that the row sum of softmax brings in",
        lambda x, y, g: (g * y * (1 - y), np.abs(g) * y * (1 + y)),
    ),
    BackwardEntry(
        "identity_backward",
        "the backward returns dout unchanged (dx = dout): the shortcut of softmax followed by "
        "cross-entropy, used where there is only a softmax",
        lambda x, y, g: (g.copy(), np.abs(g)),
    ),
    BackwardEntry(
        "sum_term_missing",
        "the backward returns dx = dout * y: the term -y * <dout, y> that softmax's row sum "
        "brings in is missing (the derivative taken through each exp alone, as if the sum "
        "were a constant)",
        lambda x, y, g: (g * y, np.abs(g) * y),
    ),
    BackwardEntry(
        "sum_sign_flipped",
        "the backward adds the row sum instead of subtracting it: dx = y * (dout + sum(dout * y))",
        lambda x, y, g: (y * (g + _rs(g * y)), y * (np.abs(g) + _rs(np.abs(g) * y))),
    ),
    BackwardEntry(
        "unweighted_sum",
        "the backward's row sum is of dout alone, not weighted by y: dx = y * (dout - sum(dout))",
        lambda x, y, g: (y * (g - _rs(g)), y * (np.abs(g) + _rs(np.abs(g)))),
    ),
    BackwardEntry(
        "upstream_missing_in_sum",
        "the backward's row sum leaves dout out: dx = y * (dout - sum(y))",
        lambda x, y, g: (y * (g - _rs(y)), y * (np.abs(g) + _rs(y))),
    ),
    BackwardEntry(
        "log_softmax_backward",
        "the backward is log-softmax's, dx = dout - y * sum(dout), applied to a softmax",
        lambda x, y, g: (g - y * _rs(g), np.abs(g) + y * _rs(np.abs(g))),
    ),
    BackwardEntry(
        "batch_axis_reduction",
        "the backward takes the sum of dout * y over the batch axis (each column) instead of "
        "along each row",
        _batch(0),
    ),
    BackwardEntry(
        "batch_axis_reduction",
        "the backward takes the sum of dout * y over the whole batch instead of along each row",
        _batch(None),
    ),
    BackwardEntry(
        "uses_input_not_output",
        "the backward evaluates the softmax derivative with the logits x where the output y "
        "belongs: dx = x * (dout - sum(dout * x))",
        lambda x, y, g: correct(x, x, g),
        BACKWARD_FIX + ", with y = softmax(x), the forward's output, not x",
    ),
    BackwardEntry(
        "derivative_at_output",
        "the backward evaluates the derivative at softmax(y) instead of at x: it applies "
        "softmax again to the forward's output y before using it",
        _at_output,
        BACKWARD_FIX + ", with y the forward's output as it is (no second softmax)",
    ),
)


#: A catalogue's tolerance for a formula: (absolute-value form, x, g, dtype) -> per entry.
Tolerance = Callable[[F64, NDArray[Any], F64, np.dtype[Any]], F64]


def _usable(observations: list[Observation]) -> list[tuple[Observation, F64, F64]]:
    """(observation, x, g) in float64 of the probes a backward can be judged on: all but those
    where the forward itself is not finite."""
    return [
        (obs, obs.probe.x.astype(np.float64), obs.probe.dout.astype(np.float64))
        for obs in observations
        if obs.y is None or obs.finite_y
    ]


def tally_fixed(
    formula: Formula,
    observations: list[Observation],
    right: Formula = correct,
    bound: Tolerance = tolerance,
) -> Tally:
    """Match one fixed formula against the backward on every usable probe, beside the correct
    one ``right``, each within ``bound`` (softmax's by default; log_softmax passes its own)."""
    tally = Tally()
    for obs, x64, g in _usable(observations):
        if obs.dx is None or obs.y is None:
            tally.fail()
            continue
        x = obs.probe.x
        with np.errstate(all="ignore"):
            value, abs_form = formula(x64, obs.y, g)
            c, c_abs = right(x64, obs.y, g)
        tally.add(
            obs.probe.label,
            obs.dx,
            value,
            bound(abs_form, x, g, x.dtype),
            c,
            bound(c_abs, x, g, x.dtype),
        )
    return tally


def tally_scaled(
    observations: list[Observation], right: Formula = correct, bound: Tolerance = tolerance
) -> tuple[Tally, float, float]:
    """Match ``k * C``, with k the least-squares estimate over every usable probe at once
    (module docstring), C = ``right``; returns the tally, k and k's relative uncertainty."""
    tally = Tally()
    rows = []
    for obs, x64, g in _usable(observations):
        if obs.dx is None or obs.y is None:
            tally.fail()
            continue
        with np.errstate(all="ignore"):
            c, c_abs = right(x64, obs.y, g)
        rows.append((obs, c, bound(c_abs, obs.probe.x, g, obs.probe.x.dtype)))
    with np.errstate(all="ignore"):
        norm = sum(float((c * c).sum()) for _, c, _ in rows)
        signal = sum(float((np.abs(c) * tol).sum()) for _, c, tol in rows)
        k = sum(float((obs.dx * c).sum()) for obs, c, _ in rows if obs.dx is not None)
    if not (norm > 0 and np.isfinite(k)):
        tally.fail()
        return tally, float("nan"), float("inf")
    k /= norm
    delta = max(abs(k), 1.0) * signal / norm
    for obs, c, tol_c in rows:
        assert obs.dx is not None
        with np.errstate(all="ignore"):
            tol_f = abs(k) * tol_c + 2 * np.abs(c) * delta
        tally.add(obs.probe.label, obs.dx, k * c, tol_f, c, tol_c)
    return tally, k, delta / abs(k) if k else float("inf")
