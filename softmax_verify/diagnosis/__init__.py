"""Diagnosis: after a failure, name the known mistake, where it shows, and the fix.

``diagnose(impl, results)`` tests hypotheses against the implementation itself,
only through ``Implementation`` (forward, backward) and ``Invariant.check``:

- formulas: its forward and backward on fixed probes (non-square, N > 1, D > 2,
  peaked rows, rows beyond exp's range) and the failures' counterexamples, against
  each known-wrong formula of the catalogue (``_forward``, ``_backward``). One is
  named only when it matches within a derived tolerance on every probe and differs
  from the correct formula on at least three (``_match``): so never for a correct
  implementation, and never one that is wrong for a two-bug implementation;
- mutation and dtype changes, as the calls report them;
- regions (``_regions``): the failing invariant re-run on families of cases.

Failures that nothing explains are reported as "no known pattern".
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from softmax_verify.core.errors import CallTimeout
from softmax_verify.core.implementation import Implementation
from softmax_verify.core.validate import resolve_dtype
from softmax_verify.diagnosis import _backward, _forward
from softmax_verify.diagnosis._match import Tally, shortest
from softmax_verify.diagnosis._probes import (
    Observation,
    Probe,
    large_probes,
    moderate_probes,
    observe,
)
from softmax_verify.diagnosis._regions import merge, region_findings
from softmax_verify.diagnosis._types import Diagnosis, Kind, describe, from_dict, to_dict
from softmax_verify.invariants import INVARIANTS

if TYPE_CHECKING:
    from softmax_verify.core.result import Result

__all__ = ["BUDGET_SECONDS", "Diagnosis", "describe", "diagnose", "from_dict", "to_dict"]

#: Wall time after which probing stops: a formula needs every probe, so none is named when
#: formula probing runs out; region probing keeps what it found so far. A call that overruns
#: its time limit stops probing at once. (A hang guard: a diagnosis
#: normally ends long before it; make bench times it.)
BUDGET_SECONDS = 10.0

FORWARD_IDS = tuple(
    inv.id
    for inv in INVARIANTS
    if not inv.needs_backward and inv.id not in ("dtype_preserved", "input_not_mutated")
)
BACKWARD_IDS = tuple(inv.id for inv in INVARIANTS if inv.needs_backward)

# (id, kind, summary, fix, evidence, explains)
#: (id, kind, summary, fix, evidence, explains): a Diagnosis before its dtypes are merged.
_Finding = tuple[str, Kind, str, str, str, tuple[str, ...]]


def _named(
    entries: Iterable[tuple[str, str, str, Tally]], dtype: str, explains: tuple[str, ...]
) -> list[_Finding]:
    """The proven entries; none when entries of different ids are proven at once.

    Two different mistakes cannot both be the whole story of one output: when two ids
    match, the probes do not tell them apart, and naming either could be wrong.
    """
    proven: list[_Finding] = [
        (i, "formula", summary, fix, tally.evidence(dtype), explains)
        for i, summary, fix, tally in entries
        if tally.proven
    ]
    return proven if len({p[0] for p in proven}) <= 1 else []


def _backward_findings(observations: list[Observation], dtype: str) -> list[_Finding]:
    entries = [
        (e.id, e.summary, e.fix, _backward.tally_fixed(e, observations))
        for e in _backward.CATALOGUE
    ]
    scaled, k, delta = _backward.tally_scaled(observations)
    flip = " (a sign flip)" if abs(k + 1) <= delta else ""
    entries.append(
        (
            "scaled_backward",
            f"the backward returns k = {shortest(k, delta)} times the true vector-Jacobian "
            f"product{flip}",
            _backward.BACKWARD_FIX,
            scaled,
        )
    )
    return _named(entries, dtype, BACKWARD_IDS)


def _consistent_backward(observations: list[Observation]) -> bool:
    """The backward matches the correct VJP at its own forward's output on every probe."""
    entry = _backward.BackwardEntry("correct", "", _backward.correct)
    tally = _backward.tally_fixed(entry, observations)
    return tally.matched and tally.probes > 0


def _dtype_changed(
    calls: list[tuple[object, object]], dtype: str, summary: str, fix: str
) -> list[_Finding]:
    """dtype_changed when every call returned one and the same dtype other than its input's:
    ``calls`` the (returned, input) dtypes of the calls that returned; ``summary`` with
    ``{}`` where that dtype goes."""
    changed = {str(returned) for returned, given in calls if returned != given}
    if not (calls and len(changed) == 1 and all(r != g for r, g in calls)):
        return []
    evidence = f"{dtype}: on all {len(calls)} probes"
    found = summary.format(changed.pop())
    return [("dtype_changed", "formula", found, fix, evidence, ("dtype_preserved",))]


def _calls(observations: list[Observation], dtype: str) -> list[_Finding]:
    """dtype_changed and mutates_input, as the calls reported them."""
    n = len(observations)
    out = _dtype_changed(
        [(o.y_dtype, o.probe.x.dtype) for o in observations if o.y_dtype is not None],
        dtype,
        "the forward returns {} for " + dtype + " input",
        "return y in x's dtype: compute in it, or end with y.astype(x.dtype, copy=False)",
    )
    out += _dtype_changed(
        [(o.dx_dtype, o.probe.dout.dtype) for o in observations if o.dx_dtype is not None],
        dtype,
        "the backward returns dx as {} for a " + dtype + " dout",
        "return dx in dout's dtype: compute in it, or end with dx.astype(dout.dtype)",
    )
    for flag, what, fix in (
        ("mutated_x", "the forward writes to its input x", "y = np.exp(x - ...) into new arrays"),
        ("mutated_dout", "the backward writes to its input dout", "dx = y * (dout - ...)"),
        (
            "mutated_cache",
            "the backward writes to the cache (or y) the forward gave it",
            "dx = y * (dout - ...) into a new array, leaving the cache as it was",
        ),
    ):
        written = sum(bool(getattr(o, flag)) for o in observations)
        if written:
            out.append(
                (
                    "mutates_input",
                    "mutation",
                    what,
                    f"compute into new arrays ({fix}); no in-place -=, *=, /= or out= on inputs",
                    f"{dtype}: written on {written} of {n} probes",
                    ("input_not_mutated",),
                )
            )
    return out


def _merge(findings: list[_Finding]) -> list[Diagnosis]:
    """One Diagnosis per (id, summary): evidence of each dtype joined, explains united."""
    merged: dict[tuple[str, str], Diagnosis] = {}
    for i, kind, summary, fix, evidence, explains in findings:
        key = (i, summary)
        if key in merged:
            old = merged[key]
            merged[key] = Diagnosis(
                i,
                old.kind,
                summary,
                fix,
                f"{old.evidence}; {evidence}",
                tuple(dict.fromkeys(old.explains + explains)),
            )
        else:
            merged[key] = Diagnosis(i, kind, summary, fix, evidence, explains)
    return list(merged.values())


class _OutOfTime(Exception):
    """The probing budget ran out before every probe was observed."""


def _observe_all(impl: Implementation, probes: list[Probe], deadline: float) -> list[Observation]:
    out = []
    for probe in probes:
        if time.monotonic() > deadline:
            raise _OutOfTime
        out.append(observe(impl, probe))
    return out


def _formula_findings(
    impl: Implementation, failed: list[Result], dtypes: list[np.dtype[Any]], deadline: float
) -> list[_Finding]:
    """The proven formula, dtype and mutation findings at each dtype."""
    findings: list[_Finding] = []
    for dt in dtypes:
        examples = [r.counterexample for r in failed if r.dtype == dt.name and r.counterexample]
        moderate = _observe_all(impl, moderate_probes(dt, examples), deadline)
        large = _observe_all(impl, large_probes(dt), deadline)
        forward = _named(_forward.forward_findings(moderate, large, dt), dt.name, FORWARD_IDS)
        if impl.has_backward:
            backward = _backward_findings(moderate, dt.name)
            if forward and _consistent_backward(moderate):
                # A backward right for its forward's output: the forward's mistake explains
                # the backward failures too (they compare with the reference at x).
                forward = [(*f[:5], f[5] + BACKWARD_IDS) for f in forward]
            findings += forward + backward
        else:
            findings += forward
        findings += _calls(moderate, dt.name)
    return findings


def diagnose(
    impl: Implementation,
    results: Sequence[Result],
    dtypes: Iterable[Any] | None = None,
    *,
    budget: float = BUDGET_SECONDS,
) -> tuple[Diagnosis, ...]:
    """The proven diagnoses of the failures in ``results`` (empty when nothing failed).

    ``dtypes``: where to probe (default: the dtypes of ``results``). Only called after
    a failure; a passing run is never probed.
    """
    failed = [r for r in results if r.status in ("failed", "error")]
    if not failed:
        return ()
    start = time.monotonic()
    names = [r.dtype for r in results] if dtypes is None else list(dtypes)
    resolved = list(dict.fromkeys(resolve_dtype(d, "dtypes") for d in names))
    try:
        with np.errstate(all="ignore"):  # probes beyond exp's range overflow by design
            findings = _formula_findings(impl, failed, resolved, start + budget)
    except (CallTimeout, _OutOfTime):
        return ()  # a formula is only named on every probe: none can be
    diagnoses = _merge(findings)
    explained = {inv for d in diagnoses for inv in d.explains}
    hits = region_findings(impl, list(results), explained, start + budget)
    for region, summary, evidence in merge(hits):
        diagnoses.append(Diagnosis(region, "region", summary, _REGION_FIX[region], evidence))
    return tuple(diagnoses)


_REGION_FIX = {
    "only_when_n_equals_d": "look for a branch on the shape (x.shape[0] == x.shape[1]) or a "
    "transpose whose effect only square inputs hide; reduce along axis=-1 for every shape",
    "only_when_n_gt_1": "look for row 0 (or one row's value) used for every row: each row "
    "needs its own max and sum, e.g. x.max(axis=-1, keepdims=True)",
    "only_when_d_gt_1": "compare the code with the correct formula on a row of two entries",
    "only_when_d_not_multiple_of_block": "handle the tail after the last full block (the "
    "D % block remaining columns) in every reduction",
    "only_for_large_logits": "subtract the row maximum before exp: "
    "e = np.exp(x - x.max(axis=-1, keepdims=True))",
    "only_at_float32": "look for code that depends on the dtype (float32 constants, casts, "
    "a branch on x.dtype)",
    "only_at_float64": "look for code that depends on the dtype (a cast to float32, float32 "
    "buffers, a branch on x.dtype)",
}
