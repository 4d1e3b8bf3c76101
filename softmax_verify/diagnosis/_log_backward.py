r"""The catalogue of known-wrong log_softmax backward formulas, and how each is tested.

Every formula is evaluated in float64 at the implementation's own forward output
:math:`\hat z` (what its backward receives), :math:`y = e^{\hat z}`, and upstream g; the
correct one is :math:`C = g - y \sum_j g_j`. The proof standard is the softmax catalogue's
(``_match``): named only when it matches on every probe and differs from C on three.

Tolerance, per entry, for a formula F built from y, g, z and x by products and sums: the
softmax catalogue's (tolerances.formula_bound, Higham's bound on :math:`|F|_{abs}` with
:math:`8\eta`), plus :math:`2(e^{a} - 1)|F|_{abs}` with a the row's largest
tolerances.log_softmax_error_bound: the backward may take y from its own cache, where the
forward's output (its exponent, absolutely within a of the exact) was rounded to the dtype,
so its y and ours are each within a factor :math:`e^{\pm a}` of the exact.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from softmax_verify.core.options import Accumulation
from softmax_verify.core.oracle import log_softmax
from softmax_verify.diagnosis._backward import (
    BackwardEntry,
    Formula,
    tally_fixed,
    tally_scaled,
)
from softmax_verify.diagnosis._match import Tally, shortest
from softmax_verify.diagnosis._probes import Observation
from softmax_verify.tolerances import formula_bound, log_softmax_error_bound

__all__ = ["LOG_BACKWARD_FIX", "LOG_CATALOGUE", "backward_findings", "consistent", "correct"]

F64 = NDArray[np.float64]
#: The loosest model, as in the softmax catalogue (its ``_MODEL``).
_MODEL: Accumulation = "input-worst-case"
LOG_BACKWARD_FIX = "dx = dout - np.exp(z) * dout.sum(axis=-1, keepdims=True)"


def _rs(a: F64) -> F64:
    out: F64 = a.sum(axis=1, keepdims=True)
    return out


def correct(x: F64, z: F64, g: F64) -> tuple[F64, F64]:
    """:math:`g - e^z \\sum g` and its absolute-value form."""
    y = np.exp(z)
    return g - y * _rs(g), np.abs(g) + y * _rs(np.abs(g))


def tolerance(abs_form: F64, x: NDArray[Any], g: F64, dtype: np.dtype[Any]) -> F64:
    """The module docstring's tolerance."""
    x64 = np.asarray(x, dtype=np.float64)
    a = log_softmax_error_bound(x64, log_softmax(x64), dtype, accumulate=_MODEL)
    spread = 2 * np.expm1(np.minimum(a.max(axis=1, keepdims=True), 700.0))
    out: F64 = formula_bound(abs_form, x, g, dtype, accumulate=_MODEL) + spread * abs_form
    return out


def _batch(axis: int | None) -> Formula:
    def formula(x: F64, z: F64, g: F64) -> tuple[F64, F64]:
        y = np.exp(z)
        return g - y * g.sum(axis=axis, keepdims=True), np.abs(g) + y * np.abs(g).sum(
            axis=axis, keepdims=True
        )

    return formula


def _softmax_vjp(x: F64, z: F64, g: F64) -> tuple[F64, F64]:
    y = np.exp(z)
    return y * (g - _rs(g * y)), y * (np.abs(g) + _rs(np.abs(g) * y))


def _entry(id_: str, summary: str, formula: Formula) -> BackwardEntry:
    """A known-wrong log_softmax backward: as softmax's entries, with log_softmax's fix."""
    return BackwardEntry(id_, summary, formula, LOG_BACKWARD_FIX)


LOG_CATALOGUE: tuple[BackwardEntry, ...] = (
    _entry(
        "diagonal_only",
        "the backward keeps only the Jacobian's diagonal, dx = dout * (1 - y) with y = exp(z), "
        "and drops the cross terms -y_j that the row's log-sum-exp brings in",
        lambda x, z, g: (g * (1 - np.exp(z)), np.abs(g) * (1 + np.exp(z))),
    ),
    _entry(
        "identity_backward",
        "the backward returns dout unchanged (dx = dout): the term -exp(z) * sum(dout) that "
        "the row's log-sum-exp brings in is missing",
        lambda x, z, g: (g.copy(), np.abs(g)),
    ),
    _entry(
        "sum_sign_flipped",
        "the backward adds the row sum instead of subtracting it: dx = dout + exp(z) * sum(dout)",
        lambda x, z, g: (g + np.exp(z) * _rs(g), np.abs(g) + np.exp(z) * _rs(np.abs(g))),
    ),
    _entry(
        "upstream_missing_in_sum",
        "the backward leaves dout out of its sum: dx = dout - exp(z), where "
        "dout - exp(z) * sum(dout) belongs",
        lambda x, z, g: (g - np.exp(z), np.abs(g) + np.exp(z)),
    ),
    _entry(
        "softmax_backward",
        "the backward is softmax's, dx = y * (dout - sum(dout * y)) with y = exp(z), applied "
        "to a log_softmax",
        _softmax_vjp,
    ),
    _entry(
        "batch_axis_reduction",
        "the backward takes the sum of dout over the batch axis (each column) instead of "
        "along each row",
        _batch(0),
    ),
    _entry(
        "batch_axis_reduction",
        "the backward takes the sum of dout over the whole batch instead of along each row",
        _batch(None),
    ),
    _entry(
        "log_output_not_exponentiated",
        "the backward uses the log-probabilities z where the probabilities exp(z) belong: "
        "dx = dout - z * sum(dout)",
        lambda x, z, g: (g - z * _rs(g), np.abs(g) + np.abs(z) * _rs(np.abs(g))),
    ),
)


def backward_findings(observations: list[Observation]) -> list[tuple[str, str, str, Tally]]:
    """(id, summary, fix, tally) of every log_softmax backward catalogue entry."""
    out = [
        (e.id, e.summary, e.fix, tally_fixed(e.formula, observations, correct, tolerance))
        for e in LOG_CATALOGUE
    ]
    scaled, k, delta = tally_scaled(observations, correct, tolerance)
    flip = " (a sign flip)" if abs(k + 1) <= delta else ""
    out.append(
        (
            "scaled_backward",
            f"the backward returns k = {shortest(k, delta)} times the true vector-Jacobian "
            f"product{flip}",
            LOG_BACKWARD_FIX,
            scaled,
        )
    )
    return out


def consistent(observations: list[Observation]) -> bool:
    """The backward matches the correct VJP at its own forward's output on every probe."""
    tally = tally_fixed(correct, observations, correct, tolerance)
    return tally.matched and tally.probes > 0
