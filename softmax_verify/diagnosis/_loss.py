"""The cross_entropy kind's catalogue: which known mistake a failing loss makes, proven on the
probes of ``_loss_probes`` by the formulas of ``_loss_formulas`` under ``_match``'s rule.

Ids: ``label_indexing``, ``no_max_shift``, ``clipped_log`` (with its epsilon),
``log_of_softmax`` (with the label gap it fails from), ``loss_sign_flipped`` (the loss
formulas, judged under ``--reduction mean``, the convention they are written in) and
``gradient_not_averaged`` (dx N times the mean's gradient; under sum, the sum's over N).
When two different ids are proven at one dtype, none is named: the probes do not tell them
apart. Proven at float32 and float64; other dtypes are not probed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from softmax_verify.core.loss_implementation import LossImplementation
from softmax_verify.core.options import Reduction
from softmax_verify.diagnosis._loss_formulas import (
    clipped,
    label_indexing,
    log_of_softmax,
    no_max_shift,
    sign_flipped,
    tally_dx_scaled,
    tally_loss,
)
from softmax_verify.diagnosis._loss_probes import (
    LossObservation,
    correct_loss,
    exp_limit,
    loss_probes,
    make_probe,
    observe_all,
    one_loss,
    underflow_gap,
)
from softmax_verify.diagnosis._match import Tally
from softmax_verify.diagnosis._types import Kind
from softmax_verify.invariants import invariants_for

__all__ = ["loss_findings"]

#: (id, kind, summary, fix, evidence, explains), as ``diagnosis._Finding``.
Finding = tuple[str, Kind, str, str, str, tuple[str, ...]]
Found = tuple[str, str, str, Tally, str]  # id, summary, fix, tally, measured

_NOT_A_FORMULA = ("dtype_preserved", "input_not_mutated", "deterministic", "onehot_index_agree")
#: What a wrong loss formula matched on every probe family accounts for: the loss checks,
#: and central differences (a correct dx is not the derivative of a wrong loss).
LOSS_IDS = (
    *(
        inv.id
        for inv in invariants_for("cross_entropy")
        if not inv.needs_backward and inv.id not in _NOT_A_FORMULA
    ),
    "central_differences",
)
#: What each entry proven on the moderate probes alone accounts for.
EXPLAINS = {
    "gradient_not_averaged": ("backward_matches_reference", "central_differences"),
    "label_indexing": ("matches_reference", "batch_consistency", "central_differences"),
    "loss_sign_flipped": ("loss_nonnegative", "matches_reference", "central_differences"),
}

FIXES = {
    "label_indexing": "take one label per row: log_probs[np.arange(N), y], not log_probs[:, y]",
    "no_max_shift": "subtract each row's maximum m before exp: "
    "loss_i = m_i + log(sum(exp(x_i - m_i))) - x[i, y_i]",
    "clipped_log": "compute the loss in log space, loss_i = logsumexp(x_i) - x[i, y_i]: exact "
    "for every row with no epsilon; keep the clip only if its deviation is wanted",
    "log_of_softmax": "take the log in log space: log_p = x - m - log(sum(exp(x - m))), "
    "loss_i = -log_p[i, y_i], instead of log(softmax(x))",
    "loss_sign_flipped": "return minus the mean log-probability of the labels: "
    "loss = -mean(log_p[np.arange(N), y])",
}


def estimate_epsilon(observations: list[LossObservation]) -> float | None:
    r"""The lower clip (or epsilon) from the deepest gap probe whose loss is finite and below
    the correct one: :math:`\hat\epsilon = e^{-\hat\ell} - p_y`, used only where
    :math:`p_y < 10^{-3}\hat\epsilon`. Its relative error is then about the loss bound A at
    the clipped value (:math:`(e^A - 1)(p_y + \hat\epsilon)/\hat\epsilon`): about 1e-5 in
    float32 and 1e-13 in float64, far below the 1e-3 the formula's tolerance allows it."""
    best: tuple[float, float] | None = None  # (epsilon, loss)
    for o in observations:
        if o.probe.family != "gaps" or o.loss is None:
            continue
        value = float(o.loss.ravel()[0])
        c, tc = correct_loss(o.probe, False)
        if not (math.isfinite(value) and 0.0 <= value < float(c) - float(tc)):
            continue
        py = math.exp(-float(c))
        eps = math.exp(-value) - py
        if eps > 0 and py < 1e-3 * eps and (best is None or value > best[1]):
            best = (eps, value)
    return None if best is None else best[0]


def estimate_upper(observations: list[LossObservation]) -> float | None:
    """The upper clip 1 - eps' from the confident probes whose loss exceeds the correct one
    (whose true loss is below 1e-11): eps' = 1 - exp(-loss), their median."""
    vals = []
    for o in observations:
        if o.probe.family != "confident" or o.loss is None:
            continue
        value = float(o.loss.ravel()[0])
        c, tc = correct_loss(o.probe, False)
        if value > float(c) + float(tc):
            vals.append(-math.expm1(-value))
    return 1 - float(np.median(vals)) if vals else None


def _bisect(fails: Callable[[float], bool], start: float, grow: float, top: float) -> float | None:
    """The smallest t at which ``fails`` (monotone) turns true: grown from ``start`` by
    ``grow`` until it fails, then bisected 50 times; None if it never fails below ``top`` or
    already fails at the step before."""
    hi = start
    while not fails(hi):
        hi *= grow
        if hi > top:
            return None
    low = hi / grow
    if fails(low):
        return None
    for _ in range(50):
        mid = (low + hi) / 2
        low, hi = (low, mid) if fails(mid) else (mid, hi)
    return hi


def _leaves_bound(impl: LossImplementation, x: Any, y: Any) -> bool:
    """Whether the loss at (x, y) fails, or leaves the reference's bound."""
    v = one_loss(impl, x, y)
    if v is None:
        return True
    c, tc = correct_loss(make_probe(x, y, "", ""), v.ndim == 1)
    with np.errstate(all="ignore"):
        return not bool(np.all(np.abs(v - c) <= tc))


def gap_threshold(impl: LossImplementation, dt: np.dtype[Any]) -> float | None:
    """The smallest label gap t (row [0, -t, -1, -2.5], label 1) at which the loss leaves its
    bound."""
    y = np.array([1], dtype=np.int64)
    return _bisect(
        lambda t: _leaves_bound(impl, np.array([[0.0, -t, -1.0, -2.5]]).astype(dt), y),
        2.0,
        1.5,
        1e5,
    )


def magnitude_threshold(impl: LossImplementation, dt: np.dtype[Any]) -> float | None:
    """The smallest logit magnitude s (rows s * base, max |base| = 1) at which the loss is not
    finite or leaves its bound."""
    base = np.array([[1.0, 0.5, -0.25], [0.75, -1.0, 0.1]])
    y = np.array([0, 2], dtype=np.int64)
    top = float(np.finfo(dt).max) / 4
    return _bisect(lambda s: _leaves_bound(impl, (base * s).astype(dt), y), 1.0, 2.0, top)


def _formula_found(
    impl: LossImplementation, obs: list[LossObservation], dt: np.dtype[Any]
) -> list[Found]:
    """The loss formulas' entries at ``dt`` (judged under the mean)."""
    out: list[Found] = []
    for div, how in (("N*N", "the mean of the N x N matrix"), ("N", "its sum over N")):
        summary = f"the loss indexes log_probs[:, y] (every row at every label) and takes {how}"
        t = tally_loss(obs, label_indexing(div), ("moderate",))
        out.append(("label_indexing", summary, FIXES["label_indexing"], t, ""))
    for form in ("lse", "softmax"):
        t = tally_loss(obs, no_max_shift(form))
        thr = magnitude_threshold(impl, dt) if t.proven else None
        summary = (
            f"exp(x) without subtracting the row maximum ({form} form): it overflows "
            "(inf or NaN) for logits above log(max)"
        )
        measured = f"exp overflows above {exp_limit(dt):.4g}" + (
            f"; the loss fails from a largest |x| of {thr:.4g}" if thr else ""
        )
        out.append(("no_max_shift", summary, FIXES["no_max_shift"], t, measured))
    out += _clipped_found(obs)
    t = tally_loss(obs, log_of_softmax)
    gap = gap_threshold(impl, dt) if t.proven else None
    measured = f"p_y underflows to 0 beyond a label gap of {underflow_gap(dt):.4g}" + (
        f"; the loss leaves its bound from a label gap of {gap:.5g}" if gap else ""
    )
    summary = (
        "the loss takes the log of an underflowing softmax instead of log-sum-exp: -log(p_y) "
        "is inf once the label's logit is far enough below the row maximum"
    )
    out.append(("log_of_softmax", summary, FIXES["log_of_softmax"], t, measured))
    return out


def _clipped_found(obs: list[LossObservation]) -> list[Found]:
    eps = estimate_epsilon(obs)
    if eps is None:
        return []
    upper = estimate_upper(obs)
    out: list[Found] = []
    for plus in (True, False):
        top = "1" if upper is None else f"1 - {1 - upper:.3g}"
        summary = (
            f"the loss is -log(p_y + {eps:.3g})"
            if plus
            else f"the loss is -log(clip(p_y, {eps:.3g}, {top}))"
        ) + (
            f", epsilon {eps:.3g}: a deliberate deviation that changes the loss of confidently "
            f"wrong rows (every row with p_y below about {eps:.3g} gets at most "
            f"{-math.log(eps):.4g})"
        )
        t = tally_loss(obs, clipped(eps, None if plus else upper, plus))
        out.append(("clipped_log", summary, FIXES["clipped_log"], t, ""))
    return out


def _gradient_found(obs: list[LossObservation], reduction: str, mean: bool) -> list[Found]:
    """loss_sign_flipped (needs a correct dx) and gradient_not_averaged."""
    out: list[Found] = []
    if reduction not in ("mean", "sum"):
        return out
    red: Reduction = "mean" if mean else "sum"
    correct_dx = tally_dx_scaled(obs, lambda n: 1.0, red)
    if mean and correct_dx.matched and correct_dx.probes:
        summary = (
            "the loss is the log-likelihood (mean log p_y, <= 0) while dx is the "
            "cross-entropy's gradient"
        )
        t = tally_loss(obs, sign_flipped, ("moderate",))
        out.append(("loss_sign_flipped", summary, FIXES["loss_sign_flipped"], t, ""))
    if mean:
        summary = "dx is N times the gradient of the mean loss: the backward misses the mean's 1/N"
        fix = "divide dx by N: dx = (softmax(x) - onehot(y)) / N"
        t = tally_dx_scaled(obs, lambda n: n, red)
    else:
        summary = "dx is the gradient of the summed loss divided by N: a 1/N the sum does not have"
        fix = "drop the division by N: dx = softmax(x) - onehot(y) for the summed loss"
        t = tally_dx_scaled(obs, lambda n: 1.0 / n, red)
    out.append(("gradient_not_averaged", summary, fix, t, ""))
    return out


def loss_findings(impl: LossImplementation, dt: np.dtype[Any], deadline: float) -> list[Finding]:
    """The proven catalogue entries at ``dt`` (none when two ids are proven at once), as
    ``diagnosis`` findings; OutOfTime past ``deadline``."""
    obs = observe_all(impl, loss_probes(dt), deadline)
    mean = impl.reduction == "mean"
    found = _formula_found(impl, obs, dt) if mean else []
    found += _gradient_found(obs, impl.reduction, mean)
    out: dict[str, Finding] = {}
    for i, summary, fix, t, measured in found:
        if t.proven and i not in out:
            evidence = t.evidence(dt.name) + (f"; measured: {measured}" if measured else "")
            explains = EXPLAINS.get(i, LOSS_IDS)
            out[i] = (i, "formula", summary, fix, evidence, explains)
    return list(out.values()) if len(out) <= 1 else []
