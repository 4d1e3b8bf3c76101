"""Half-precision failures that another accumulation model accepts: the report says which.

A check at float16 or bfloat16 judges the code by the run's accumulation model
(``Options.accumulate``): float32 or wider rounded once (``"float32"``), the half dtype
with independent rounding errors (``"input"``), or the half dtype in the worst case
(``"input-worst-case"``). Code written for another model fails by a few ulps, or by the
difference between the probabilistic and the worst-case bound. So each failed check at a
half dtype is checked again on its own counterexample under each other model, tightest
first; the first that accepts it is named, with the option that selects it.

Proof standard: the check itself, under that model's derived bound, on the failure's
counterexample: the counterexample is within that model's bound. A model other than the
worst case *explains* the failure (the code is right for that model; the regions, whose
hints would then mislead, are not probed for it). The worst case is reported but explains
nothing: it accepts nearly any error on long rows, real bugs included.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np

from softmax_verify.core.dtypes import is_half
from softmax_verify.core.errors import (
    CallTimeout,
    ImplementationError,
    InvariantViolation,
    NotApplicable,
)
from softmax_verify.core.implementation import Implementation
from softmax_verify.core.kinds import Kind
from softmax_verify.core.loss_implementation import LossImplementation
from softmax_verify.core.options import ACCUMULATIONS, Accumulation
from softmax_verify.core.validate import resolve_dtype
from softmax_verify.invariants import get_invariant

if TYPE_CHECKING:
    from softmax_verify.core.result import Result

__all__ = ["MODEL_FIXES", "MODEL_WORDS", "accepted_by", "model_findings"]

#: What each model assumes, in the words of a report.
MODEL_WORDS: dict[str, str] = {
    "float32": "float32 or wider, rounded once to the half dtype",
    "input": "everything in the half dtype, independent rounding errors (probabilistic bound)",
    "input-worst-case": "everything in the half dtype, worst case (every rounding error of "
    "one sign, subnormals flushed)",
}

#: The fix each model's acceptance suggests.
MODEL_FIXES: dict[str, str] = {
    "float32": "check it with --accumulate float32 (the default): the code accumulates in "
    "float32 or wider and rounds once, which that model states exactly",
    "input": "if the code computes in the half dtype on purpose, check it with --accumulate "
    "input; otherwise accumulate in float32 and round once at the end",
    "input-worst-case": "the worst case of computing in the half dtype allows this error; if "
    "that is accepted, check it with --accumulate input-worst-case; otherwise look for errors "
    "that are not independent roundings: a running sum that stops growing (add pairwise or in "
    "float32), or a term lost to overflow or underflow in the half dtype",
}


def accepted_by(
    impl: Implementation | LossImplementation,
    result: Result,
    kind: Kind,
    current: Accumulation,
    deadline: float,
) -> str | None:
    """The first model, tightest first, whose check accepts ``result``'s counterexample, or
    None (also when the time runs out, or the check cannot be run on it)."""
    if result.counterexample is None:
        return None
    inv = get_invariant(result.invariant, kind)
    for model in ACCUMULATIONS:
        if model == current or time.monotonic() > deadline:
            continue
        try:
            with np.errstate(all="ignore"):
                inv.check(impl, dict(result.counterexample), model)
        except CallTimeout:
            return None
        except (InvariantViolation, ImplementationError, NotApplicable):
            continue
        except Exception:  # a case this check cannot take: no evidence either way
            continue
        return model
    return None


def model_findings(
    impl: Implementation | LossImplementation,
    results: list[Result],
    kind: Kind,
    current: Accumulation,
    deadline: float,
) -> list[tuple[str, str, str, str, tuple[str, ...]]]:
    """``(summary, fix, evidence, dtype, explains)`` per (dtype, accepting model): the failed
    checks at half dtypes that another model accepts (module docstring)."""
    groups: dict[tuple[str, str], list[str]] = {}
    for r in results:
        if r.status != "failed" or not is_half(resolve_dtype(r.dtype)):
            continue
        model = accepted_by(impl, r, kind, current, deadline)
        if model is not None:
            groups.setdefault((r.dtype, model), []).append(r.invariant)
    out = []
    for (dtype, model), invariants in groups.items():
        names = ", ".join(invariants)
        verb = "hold" if len(invariants) > 1 else "holds"
        summary = (
            f"{names} ({dtype}) {verb} on the counterexample under --accumulate {model} "
            f"({MODEL_WORDS[model]}), not under the run's --accumulate {current} "
            f"({MODEL_WORDS[current]})"
        )
        evidence = (
            f"{dtype}: each failure's counterexample, checked again with --accumulate {model}, "
            "is within that model's derived bound"
        )
        explains = tuple(invariants) if model != "input-worst-case" else ()
        out.append((summary, MODEL_FIXES[model], evidence, dtype, explains))
    return out
