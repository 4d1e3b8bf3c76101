"""The verdict: one result per (invariant, dtype), as text for people and JSON for tools."""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from softmax_verify._compare import Mismatch
from softmax_verify.conventions import Reading
from softmax_verify.diagnosis._types import Diagnosis, describe, to_dict

__all__ = ["Report", "Result", "Status", "VerificationFailed"]

Status = Literal["passed", "failed", "error", "skipped"]

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
    "text",
)

#: Arrays up to this many entries are printed in full in text reports.
FULL_PRINT = 64
_STATUSES: tuple[Status, ...] = ("passed", "failed", "error", "skipped")
#: Failing (invariant, dtype) pairs named in ``repr(report)`` before "...".
_REPR_NAMED = 3


@dataclass(frozen=True)
class Result:
    """The outcome of one invariant at one dtype."""

    invariant: str
    dtype: str
    status: Status
    examples: int
    seconds: float
    message: str
    counterexample: dict[str, np.ndarray[Any, Any]] | None = None
    first_wrong_stage: str | None = None
    mismatch: Mismatch | None = field(default=None, compare=False)
    location: str | None = None
    #: Whether ``counterexample`` is Hypothesis's shrunk, minimal case. Not for a call that
    #: overran its time limit or crashed the process: either ends the search at once.
    minimal: bool = True


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
            for s in _STATUSES
            if counts[s]
        )
        failing = [f"{r.invariant}[{r.dtype}]" for r in self.failures]
        named = ", ".join(failing[:_REPR_NAMED]) + (", ..." if len(failing) > _REPR_NAMED else "")
        verdict = "passed" if self.passed else f"FAILED: {named}"
        return f"<Report {self.target!r} {verdict} ({tally or 'no results'})>"

    def _repr_html_(self) -> str:
        """The report as an HTML table, for Jupyter (``softmax_verify._formats.to_html``)."""
        from softmax_verify._formats import to_html  # it renders Reports: imported on use

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


def failure_lines(result: Result, indent: str = "") -> list[str]:
    """The report's block for one failure: message, location, comparison, input."""
    lines = [indent + result.message]
    if result.first_wrong_stage and result.first_wrong_stage not in result.message:
        lines.append(f"{indent}first wrong stage: {result.first_wrong_stage}")
    if result.location:
        lines.append(f"{indent}at {result.location}")
    if result.mismatch is not None:
        lines.extend(indent + line for line in result.mismatch.describe().splitlines())
    if result.counterexample is not None:
        lines.append(
            f"{indent}minimal counterexample:"
            if result.minimal
            else f"{indent}counterexample (the input it stopped on; not shrunk):"
        )
        for name, value in result.counterexample.items():
            lines.extend(indent + line for line in _format_array(name, value))
    return lines


def status_counts(results: Iterable[Result]) -> dict[Status, int]:
    """How many results have each status, every status listed."""
    statuses = Counter(r.status for r in results)
    return {s: statuses[s] for s in _STATUSES}


def summary_line(results: Iterable[Result]) -> str:
    """The text report's last line: ``3 passed, 1 failed, 0 errors, 0 skipped``."""
    counts = status_counts(results)
    return ", ".join(f"{n} {'errors' if s == 'error' else s}" for s, n in counts.items())


def _dtype_source(dtype: np.dtype[Any]) -> str:
    """The dtype as Python source: bfloat16 is not numpy's but ml_dtypes'."""
    return "ml_dtypes.bfloat16" if dtype.name == "bfloat16" else f"np.{dtype}"


def _format_array(name: str, value: np.ndarray[Any, Any]) -> list[str]:
    if value.size <= FULL_PRINT:
        body = np.array2string(value, precision=17, separator=", ", max_line_width=100)
        text = (
            f"{name} = np.array({body}, dtype={_dtype_source(value.dtype)})"
            if value.ndim
            else f"{name} = {value.item()!r}"
        )
    else:
        text = f"{name}: array of shape {value.shape}, dtype {value.dtype} (too large to print)"
    return ["  " + line for line in text.splitlines()]


class VerificationFailed(AssertionError):
    """``Report.raise_for_failures``: the report did not pass; the message is its text form."""

    def __init__(self, report: Report) -> None:
        self.report = report
        super().__init__(report.to_text())
