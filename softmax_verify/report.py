"""The verdict: one result per (invariant, dtype), as text for people and JSON for tools."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from softmax_verify._compare import Mismatch

__all__ = ["Report", "Result", "Status"]

Status = Literal["passed", "failed", "error", "skipped"]

#: Arrays up to this many entries are printed in full in text reports.
FULL_PRINT = 64


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
    #: How the target was read, when that needed interpreting (softmax_verify.autodiff), and
    #: the kind checked when it is not softmax; "" otherwise.
    interpretation: str = ""

    @property
    def passed(self) -> bool:
        return all(r.status in ("passed", "skipped") for r in self.results)

    @property
    def failures(self) -> tuple[Result, ...]:
        return tuple(r for r in self.results if r.status in ("failed", "error"))

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
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
            "interpretation": self.interpretation or None,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False)

    def to_text(self) -> str:
        lines = [
            f"softmax-verify: {self.target}"
            + (f" (backward: {self.backward})" if self.backward else "")
        ]
        lines.append(
            f"profile {self.profile}, seed {self.seed if self.seed is not None else 'derandomized'}"
        )
        if self.interpretation:
            lines.append(f"read as: {self.interpretation}")
        lines.append("")
        width = max((len(r.invariant) for r in self.results), default=10)
        for r in self.results:
            note = f"  [{r.message}]" if r.status == "skipped" else ""
            lines.append(
                f"  {r.status.upper():8} {r.invariant:<{width}}  {r.dtype:8} "
                f"{r.examples:5d} examples  {r.seconds:6.2f} s{note}"
            )
        for r in self.failures:
            lines.extend(["", f"{r.status.upper()}: {r.invariant} ({r.dtype})", f"  {r.message}"])
            if r.first_wrong_stage and r.first_wrong_stage not in r.message:
                lines.append(f"  first wrong stage: {r.first_wrong_stage}")
            if r.location:
                lines.append(f"  at {r.location}")
            if r.mismatch is not None:
                lines.extend("  " + line for line in r.mismatch.describe().splitlines())
            if r.counterexample is not None:
                lines.append(
                    "  minimal counterexample:"
                    if r.minimal
                    else "  counterexample (the input it stopped on; not shrunk):"
                )
                for name, value in r.counterexample.items():
                    lines.extend(_format_array(name, value))
        passed = sum(r.status == "passed" for r in self.results)
        failed = sum(r.status == "failed" for r in self.results)
        errors = sum(r.status == "error" for r in self.results)
        skipped = sum(r.status == "skipped" for r in self.results)
        lines.extend(["", f"{passed} passed, {failed} failed, {errors} errors, {skipped} skipped"])
        if self.failures and self.command:
            lines.append(f"reproduce: {self.command}")
        return "\n".join(lines)


def _format_array(name: str, value: np.ndarray[Any, Any]) -> list[str]:
    if value.size <= FULL_PRINT:
        body = np.array2string(value, precision=17, separator=", ", max_line_width=100)
        text = (
            f"{name} = np.array({body}, dtype=np.{value.dtype})"
            if value.ndim
            else f"{name} = {value.item()!r}"
        )
    else:
        text = f"{name}: array of shape {value.shape}, dtype {value.dtype} (too large to print)"
    return ["    " + line for line in text.splitlines()]
