"""Diagnosis: after a failure, name the known mistake, where it shows, and the fix.

``diagnose(impl, results)`` tests hypotheses against the implementation itself,
only through ``Implementation`` (forward, backward) and ``Invariant.check``:

- formulas: its forward and backward on fixed probes (non-square, N > 1, D > 2,
  peaked rows, rows beyond exp's range) and the failures' counterexamples, against
  each known-wrong formula of the kind's catalogue (``_catalogues``: softmax's
  ``_forward`` and ``_backward``, log_softmax's ``_log_forward`` and ``_log_backward``;
  cross_entropy's, on a ``LossImplementation``, in ``_loss``).
  One is named only when it matches within a derived tolerance on every probe and
  differs from the correct formula on at least three (``_match``): so never for a
  correct implementation, and never one that is wrong for a two-bug implementation;
- mutation and dtype changes, as the calls report them;
- accumulation models (``_accumulation``): a half-precision failure another model
  accepts, with the option that selects it;
- regions (``_regions``): the failing invariant re-run on families of cases, under the
  run's accumulation model.

Failures that nothing explains are reported as "no known pattern".
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from softmax_verify.core.errors import CallTimeout
from softmax_verify.core.implementation import Implementation
from softmax_verify.core.kinds import Kind as FunctionKind
from softmax_verify.core.kinds import check_kind
from softmax_verify.core.loss_implementation import LossImplementation
from softmax_verify.core.options import Accumulation
from softmax_verify.core.validate import resolve_dtype
from softmax_verify.diagnosis._accumulation import model_findings
from softmax_verify.diagnosis._catalogues import CATALOGUES, Catalogue, Entry
from softmax_verify.diagnosis._loss import loss_findings
from softmax_verify.diagnosis._loss_probes import DTYPES as LOSS_DTYPES
from softmax_verify.diagnosis._loss_probes import OutOfTime as _LossOutOfTime
from softmax_verify.diagnosis._loss_regions import loss_region_findings
from softmax_verify.diagnosis._probes import Observation, Probe, moderate_probes, observe
from softmax_verify.diagnosis._regions import merge, region_findings
from softmax_verify.diagnosis._types import Diagnosis, Kind, describe, from_dict, to_dict

if TYPE_CHECKING:
    from softmax_verify.core.result import Result

__all__ = ["BUDGET_SECONDS", "Diagnosis", "describe", "diagnose", "from_dict", "to_dict"]

#: Wall time after which probing stops: a formula needs every probe, so none is named when
#: formula probing runs out; region probing keeps what it found so far. A call that overruns
#: its time limit stops probing at once. (A hang guard: a diagnosis
#: normally ends long before it; make bench times it.)
BUDGET_SECONDS = 10.0

#: (id, kind, summary, fix, evidence, explains): a Diagnosis before its dtypes are merged.
_Finding = tuple[str, Kind, str, str, str, tuple[str, ...]]


def _named(entries: Iterable[Entry], dtype: str, explains: tuple[str, ...]) -> list[_Finding]:
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
    impl: Implementation,
    failed: list[Result],
    dtypes: list[np.dtype[Any]],
    deadline: float,
    catalogue: Catalogue,
) -> list[_Finding]:
    """The proven formula, dtype and mutation findings at each dtype."""
    findings: list[_Finding] = []
    backward_ids = catalogue.backward_ids
    for dt in dtypes:
        examples = [r.counterexample for r in failed if r.dtype == dt.name and r.counterexample]
        moderate = _observe_all(impl, moderate_probes(dt, examples), deadline)
        large = _observe_all(impl, catalogue.large(dt), deadline)
        forward = _named(catalogue.forward(moderate, large, dt), dt.name, catalogue.forward_ids)
        if impl.has_backward:
            backward = _named(catalogue.backward(moderate), dt.name, backward_ids)
            if forward and catalogue.consistent(moderate):
                # A backward right for its forward's output: the forward's mistake explains
                # the backward failures too (they compare with the reference at x).
                forward = [(*f[:5], f[5] + backward_ids) for f in forward]
            findings += forward + backward
        else:
            findings += forward
        findings += _calls(moderate, dt.name)
    return findings


def _diagnose_loss(
    impl: LossImplementation,
    results: Sequence[Result],
    dtypes: list[np.dtype[Any]],
    deadline: float,
    accumulate: Accumulation,
) -> tuple[Diagnosis, ...]:
    """cross_entropy's proven catalogue entries (``_loss``) at each dtype it is proven at,
    then the failures' regions (``_loss_regions``)."""
    findings: list[_Finding] = []
    try:
        with np.errstate(all="ignore"):  # probes beyond exp's range overflow by design
            for dt in dtypes:
                if dt.name in LOSS_DTYPES:
                    findings += loss_findings(impl, dt, deadline)
    except (CallTimeout, _LossOutOfTime):
        return ()  # a formula is only named on every probe: none can be
    diagnoses = _merge(findings)
    by_model = _model_diagnoses(impl, results, "cross_entropy", accumulate, deadline, diagnoses)
    regional = [r for r in results if (r.invariant, r.dtype) not in by_model]
    for region, summary, evidence, fix in loss_region_findings(
        impl, regional, deadline, accumulate=accumulate
    ):
        diagnoses.append(Diagnosis(region, "region", summary, fix, evidence))
    return tuple(diagnoses)


def _model_diagnoses(
    impl: Implementation | LossImplementation,
    results: Sequence[Result],
    kind: FunctionKind,
    accumulate: Accumulation,
    deadline: float,
    diagnoses: list[Diagnosis],
) -> set[tuple[str, str]]:
    """Appends to ``diagnoses`` the half-precision failures another accumulation model
    accepts (``_accumulation``); returns the (invariant, dtype) pairs they explain.

    A failure another model accepts is a few ulps of half precision: regions would only
    describe where those ulps show (on rows longer than one entry, say), and mislead; so
    the caller leaves these pairs out of its regions."""
    by_model: set[tuple[str, str]] = set()
    for summary, fix, evidence, dtype, explains in model_findings(
        impl, list(results), kind, accumulate, deadline
    ):
        diagnoses.append(Diagnosis("accumulation_model", "model", summary, fix, evidence, explains))
        by_model |= {(inv, dtype) for inv in explains}
    return by_model


def diagnose(
    impl: Implementation | LossImplementation,
    results: Sequence[Result],
    dtypes: Iterable[Any] | None = None,
    *,
    budget: float = BUDGET_SECONDS,
    accumulate: Accumulation = "float32",
    kind: str = "softmax",
) -> tuple[Diagnosis, ...]:
    """The proven diagnoses of the failures in ``results`` (empty when nothing failed).

    ``dtypes``: where to probe (default: the dtypes of ``results``); ``kind``: whose
    catalogue and invariants (``"softmax"``, ``"log_softmax"``, or ``"cross_entropy"`` with a
    ``LossImplementation``, whose catalogue has formulas only); ``accumulate``: the run's
    half-precision accumulation model, under which the regions re-run its checks. Only
    called after a failure; a passing run is never probed. With no memory left for the
    probes (the verifier's MemoryError, or the child's), nothing can be proven: none.
    """
    failed = [r for r in results if r.status in ("failed", "error")]
    if not failed:
        return ()
    try:
        return _diagnose(impl, results, failed, dtypes, budget, accumulate, check_kind(kind))
    except MemoryError:
        return ()


def _diagnose(
    impl: Implementation | LossImplementation,
    results: Sequence[Result],
    failed: list[Result],
    dtypes: Iterable[Any] | None,
    budget: float,
    accumulate: Accumulation,
    resolved_kind: FunctionKind,
) -> tuple[Diagnosis, ...]:
    """``diagnose`` of the ``failed`` results among ``results``."""
    start = time.monotonic()
    names = [r.dtype for r in results] if dtypes is None else list(dtypes)
    resolved = list(dict.fromkeys(resolve_dtype(d, "dtypes") for d in names))
    if isinstance(impl, LossImplementation):
        return _diagnose_loss(impl, results, resolved, start + budget, accumulate)
    catalogue = CATALOGUES.get(resolved_kind)
    if catalogue is None:
        return ()  # a kind with no catalogue of known mistakes: nothing can be proven
    try:
        with np.errstate(all="ignore"):  # probes beyond exp's range overflow by design
            findings = _formula_findings(impl, failed, resolved, start + budget, catalogue)
    except (CallTimeout, _OutOfTime):
        return ()  # a formula is only named on every probe: none can be
    diagnoses = _merge(findings)
    by_model = _model_diagnoses(impl, results, resolved_kind, accumulate, start + budget, diagnoses)
    explained = {inv for d in diagnoses for inv in d.explains}
    regional = [r for r in results if (r.invariant, r.dtype) not in by_model]
    hits = region_findings(
        impl, regional, explained, start + budget, kind=resolved_kind, accumulate=accumulate
    )
    for region, summary, evidence, fix in merge(hits):
        diagnoses.append(Diagnosis(region, "region", summary, fix, evidence))
    return tuple(diagnoses)
