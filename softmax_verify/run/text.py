"""A Result as lines of text: the blocks every format of a report shares."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

import numpy as np

from softmax_verify.core.result import STATUSES, Result, Status

__all__ = ["FULL_PRINT", "failure_lines", "failure_text", "status_counts", "summary_line"]

#: Arrays up to this many entries are printed in full in text reports.
FULL_PRINT = 64


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


def failure_text(result: Result) -> str:
    """The text report's block for one failure: message, location, comparison, input."""
    return "\n".join(failure_lines(result))
