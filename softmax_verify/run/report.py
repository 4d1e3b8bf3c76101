"""The verdict: one result per (invariant, dtype), as text for people, JSON for tools and
HTML for notebooks (``Report._repr_html_``)."""

from __future__ import annotations

import html
import json
import math
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from softmax_verify.core.errors import Mismatch
from softmax_verify.core.messages import one_line
from softmax_verify.core.result import STATUSES, Result
from softmax_verify.diagnosis._types import Diagnosis, describe, to_dict
from softmax_verify.run.text import failure_lines, failure_text, summary_line
from softmax_verify.target.conventions import Reading

__all__ = ["Report", "VerificationFailed", "to_html"]

#: The JSON ``target`` object: its name and how it was read (None when not known).
_READING_KEYS = (
    "name",
    "kind",
    "forward",
    "backward",
    "grad",
    "grad_at",
    "layout",
    "notes",
    "autodiff",
    "arrays",
    "text",
)

#: Failing (invariant, dtype) pairs named in ``repr(report)`` before "...".
_REPR_NAMED = 3


def _jsonable(value: Any) -> Any:
    """Nested lists of floats; non-finite values as the strings "nan", "inf", "-inf"."""
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
    return value


def _mismatch_dict(m: Mismatch) -> dict[str, Any]:
    """The fields of the text report's comparison block (``Mismatch.describe``)."""
    return {
        "what": m.what,
        "count": int(m.count),
        "total": int(m.total),
        "max_abs_error": _jsonable(float(m.max_abs_error)),
        "max_rel_error": _jsonable(float(m.max_rel_error)),
        "worst_index": [int(i) for i in m.worst_index],
        "actual": _jsonable(float(m.actual)),
        "expected": _jsonable(float(m.expected)),
        "tolerance": _jsonable(float(m.tolerance)),
    }


@dataclass(frozen=True)
class Report:
    """All results of one verification run, with what is needed to reproduce it."""

    target: str
    backward: str | None
    profile: str
    seed: int | None
    results: tuple[Result, ...]
    command: str = ""
    #: What the failures are known to come from (softmax_verify.diagnosis); () when all passed.
    diagnosis: tuple[Diagnosis, ...] = ()
    #: What the run observed beside the results, e.g. processes the target left running.
    notes: tuple[str, ...] = ()
    #: The shapes drawn (``Domain.describe``); empty when not recorded.
    domain: str = ""
    #: The accumulation model half-precision results were judged by; empty when no half
    #: dtype was checked.
    accumulate: str = ""
    #: How the target was read (its convention, methods, layout); None when not known.
    reading: Reading | None = None
    #: The kind of function checked when it is not softmax (``log_softmax``); "" otherwise.
    interpretation: str = ""

    @property
    def passed(self) -> bool:
        return all(r.status in ("passed", "skipped") for r in self.results)

    def __bool__(self) -> bool:
        """True when nothing failed or errored (``passed``): ``assert verify(f, b)`` means it.

        An empty or all-skipped report is true as well, as ``passed`` is.
        """
        return self.passed

    def __repr__(self) -> str:
        """One line: the target, the verdict and the counts, with the first failures named."""
        counts = Counter(r.status for r in self.results)
        tally = ", ".join(
            f"{counts[s]} {'errors' if s == 'error' and counts[s] > 1 else s}"
            for s in STATUSES
            if counts[s]
        )
        failing = [f"{r.invariant}[{r.dtype}]" for r in self.failures]
        named = ", ".join(failing[:_REPR_NAMED]) + (", ..." if len(failing) > _REPR_NAMED else "")
        verdict = "passed" if self.passed else f"FAILED: {named}"
        return f"<Report {self.target!r} {verdict} ({tally or 'no results'})>"

    def _repr_html_(self) -> str:
        """The report as an HTML table, for Jupyter (``to_html``)."""
        return to_html(self)

    def raise_for_failures(self) -> None:
        """Raise ``VerificationFailed`` (an AssertionError) with the text report, unless passed."""
        if not self.passed:
            raise VerificationFailed(self)

    @property
    def failures(self) -> tuple[Result, ...]:
        return tuple(r for r in self.results if r.status in ("failed", "error"))

    def to_dict(self) -> dict[str, Any]:
        target: dict[str, Any] = dict.fromkeys(_READING_KEYS)
        target.update(name=self.target, notes=[], text=self.target)
        if self.reading is not None:
            target.update((k, v) for k, v in self.reading.to_dict().items() if k != "name")
        return {
            "target": target,
            "backward": self.backward,
            "profile": self.profile,
            "seed": self.seed,
            "passed": self.passed,
            "results": [
                {
                    "invariant": r.invariant,
                    "dtype": r.dtype,
                    "status": r.status,
                    "examples": r.examples,
                    "seconds": round(r.seconds, 4),
                    "message": r.message,
                    "counterexample": None
                    if r.counterexample is None
                    else {k: _jsonable(v) for k, v in r.counterexample.items()},
                    "minimal": r.minimal,
                    "first_wrong_stage": r.first_wrong_stage,
                    "location": r.location,
                    "mismatch": None if r.mismatch is None else _mismatch_dict(r.mismatch),
                }
                for r in self.results
            ],
            "command": self.command or None,
            "diagnosis": [to_dict(d) for d in self.diagnosis],
            "notes": list(self.notes),
            "domain": self.domain or None,
            "accumulate": self.accumulate or None,
            "interpretation": self.interpretation or None,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False)

    def to_text(self) -> str:
        lines = [
            f"softmax-verify: {self.target}"
            + (f" (backward: {self.backward})" if self.backward else "")
        ]
        if self.reading is not None:
            lines.append(f"read as: {self.reading.how()}")
            lines.extend(f"note: {note}" for note in self.reading.notes)
        lines.append(
            f"profile {self.profile}, seed {self.seed if self.seed is not None else 'derandomized'}"
        )
        if self.domain:
            lines.append(f"shapes: {self.domain}")
        if self.accumulate:
            lines.append(f"half precision judged for accumulation in {self.accumulate}")
        if self.interpretation:
            lines.append(f"checked as: {self.interpretation}")
        lines.append("")
        width = max((len(r.invariant) for r in self.results), default=10)
        for r in self.results:
            note = f"  [{r.message}]" if r.status == "skipped" else ""
            lines.append(
                f"  {r.status.upper():8} {r.invariant:<{width}}  {r.dtype:8} "
                f"{r.examples:5d} examples  {r.seconds:6.2f} s{note}"
            )
        for r in self.failures:
            lines.extend(["", f"{r.status.upper()}: {r.invariant} ({r.dtype})"])
            lines.extend(failure_lines(r, "  "))
        diagnosis = describe(self.diagnosis, ((r.invariant, r.dtype) for r in self.failures))
        lines.extend(["", *diagnosis] if diagnosis else [])
        lines.extend(["", *(f"note: {note}" for note in self.notes)] if self.notes else [])
        lines.extend(["", summary_line(self.results)])
        if self.failures and self.command:
            lines.append(f"reproduce: {self.command}")
        return "\n".join(lines)


# --- HTML, for notebooks --------------------------------------------------------------------------

_COLOURS = {"passed": "#1a7f37", "failed": "#cf222e", "error": "#bf8700", "skipped": "#6e7781"}


def to_html(report: Report) -> str:
    """A self-contained HTML fragment: header, results table, one section per failure."""
    e = html.escape
    verdict = "passed" if report.passed else "FAILED"
    seed = report.seed if report.seed is not None else "derandomized"
    parts = [
        "<div class='softmax-verify-report'>",
        f"<p><strong>softmax-verify: {e(report.target)}</strong>"
        + (f" (backward: {e(report.backward)})" if report.backward else "")
        + f" &mdash; <strong style='color:{_COLOURS['passed' if report.passed else 'failed']}'>"
        f"{verdict}</strong><br>profile {e(report.profile)}, seed {e(str(seed))}; "
        f"{summary_line(report.results)}</p>",
        "<table><thead><tr><th>status</th><th>invariant</th><th>dtype</th>"
        "<th>examples</th><th>seconds</th><th>note</th></tr></thead><tbody>",
    ]
    for r in report.results:
        note = r.message if r.status == "skipped" else ""
        parts.append(
            f"<tr><td style='color:{_COLOURS[r.status]}'><strong>{r.status.upper()}</strong></td>"
            f"<td><code>{e(r.invariant)}</code></td><td>{e(r.dtype)}</td>"
            f"<td style='text-align:right'>{r.examples}</td>"
            f"<td style='text-align:right'>{r.seconds:.2f}</td><td>{e(note)}</td></tr>"
        )
    parts.append("</tbody></table>")
    for r in report.failures:
        parts.append(
            f"<details open><summary><strong>{r.status.upper()}: {e(r.invariant)} "
            f"({e(r.dtype)})</strong>: {e(one_line(r.message))}"
            "</summary>"
        )
        parts.append(f"<pre>{e(failure_text(r))}</pre></details>")
    if report.failures:
        items = "".join(
            f"<li><code>{e(d.id)}</code> ({e(d.kind)}): {e(d.summary)}<br>fix: "
            f"<code>{e(d.fix)}</code><br>evidence: {e(d.evidence)}</li>"
            for d in report.diagnosis
        )
        parts.append(
            f"<p>Diagnosis:</p><ul class='diagnosis'>{items or '<li>no known pattern</li>'}</ul>"
        )
    if report.failures and report.command:
        parts.append(f"<p>reproduce: <code>{e(report.command)}</code></p>")
    parts.append("</div>")
    return "\n".join(parts)


class VerificationFailed(AssertionError):
    """``Report.raise_for_failures``: the report did not pass; the message is its text form."""

    def __init__(self, report: Report) -> None:
        self.report = report
        super().__init__(report.to_text())
