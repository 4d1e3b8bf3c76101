"""The outcome of one invariant at one dtype: what every part of a run reports in."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from softmax_verify.core.errors import Mismatch

__all__ = ["STATUSES", "Result", "Status"]

Status = Literal["passed", "failed", "error", "skipped"]
#: Every status, in report order.
STATUSES: tuple[Status, ...] = ("passed", "failed", "error", "skipped")


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
