"""A Result as lines of text: the blocks every format of a report shares."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

import numpy as np

from softmax_verify.core.result import STATUSES, Result, Status
from softmax_verify.run._array_source import FULL_PRINT, array_source

__all__ = ["FULL_PRINT", "failure_lines", "failure_text", "status_counts", "summary_line"]


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
    return {s: statuses[s] for s in STATUSES}


def summary_line(results: Iterable[Result]) -> str:
    """The text report's last line: ``3 passed, 1 failed, 0 errors, 0 skipped``."""
    counts = status_counts(results)
    return ", ".join(f"{n} {'errors' if s == 'error' else s}" for s, n in counts.items())


def _format_array(name: str, value: np.ndarray[Any, Any]) -> list[str]:
    """The lines that print one array of a counterexample: Python source that rebuilds it
    exactly where it is small or structured (``_array_source``), else its shape and dtype."""
    source = array_source(name, value)
    if source is None:
        source = [
            f"{name}: array of shape {value.shape}, dtype {value.dtype} (no structure to "
            "print it by: too large to print in full)"
        ]
    return ["  " + line for part in source for line in part.splitlines()]


def failure_text(result: Result) -> str:
    """The text report's block for one failure: message, location, comparison, input."""
    return "\n".join(failure_lines(result))
