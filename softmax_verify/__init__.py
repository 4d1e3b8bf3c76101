"""softmax-verify: property-based verification of softmax forward/backward implementations.

Public API:

- the reference: ``softmax``, ``softmax_backward``, ``softmax_jvp``,
  ``log_softmax``, ``log_softmax_backward``, ``staged_forward``, ``staged_backward``;
- ``verify(forward, backward=None, ...) -> Report``: every invariant as a
  Hypothesis property against your implementation (functions, or a layer class or
  instance; ``softmax_verify.target.conventions`` reads the shapes code is written in), at
  float32 and float64; a Report is true when it passed (``assert verify(f, b)``), and
  ``report.raise_for_failures()`` raises ``VerificationFailed`` with the text report;
- ``Domain``: the shapes an implementation supports (``verify(..., domain=...)``);
- ``Options``: every option of a run, one validated value (``verify(..., options=...)``);
- ``INVARIANTS``: the invariants, each with an id, its math and a check;
- ``softmax_verify.gradcheck``: exhaustive and fast gradient checks;
- ``softmax_verify.testing.SoftmaxContract``: the same checks as a pytest base class.

The names are imported on first use (PEP 562): the command's child process, which runs
the code under test, imports the package for the few modules it needs, and must not pay
for Hypothesis and the invariants it never uses.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from softmax_verify.bundled.reference import (
        log_softmax,
        log_softmax_backward,
        softmax,
        softmax_backward,
        softmax_jvp,
    )
    from softmax_verify.bundled.staged import (
        StagedCache,
        StagedGradients,
        staged_backward,
        staged_forward,
    )
    from softmax_verify.core.domain import Domain
    from softmax_verify.core.errors import ImplementationError, InvariantViolation
    from softmax_verify.core.options import Options
    from softmax_verify.core.result import Result
    from softmax_verify.invariants import INVARIANT_IDS, INVARIANTS, Invariant
    from softmax_verify.run.report import Report, VerificationFailed
    from softmax_verify.run.runner import verify

__all__ = [
    "INVARIANTS",
    "INVARIANT_IDS",
    "Domain",
    "ImplementationError",
    "Invariant",
    "InvariantViolation",
    "Options",
    "Report",
    "Result",
    "StagedCache",
    "StagedGradients",
    "VerificationFailed",
    "__version__",
    "log_softmax",
    "log_softmax_backward",
    "softmax",
    "softmax_backward",
    "softmax_jvp",
    "staged_backward",
    "staged_forward",
    "verify",
]

__version__ = "0.1.0"

#: The module each public name lives in.
_HOMES = {
    "Domain": "core.domain",
    "ImplementationError": "core.errors",
    "InvariantViolation": "core.errors",
    "INVARIANTS": "invariants",
    "INVARIANT_IDS": "invariants",
    "Invariant": "invariants",
    "Options": "core.options",
    "log_softmax": "bundled.reference",
    "log_softmax_backward": "bundled.reference",
    "softmax": "bundled.reference",
    "softmax_backward": "bundled.reference",
    "softmax_jvp": "bundled.reference",
    "Report": "run.report",
    "Result": "core.result",
    "VerificationFailed": "run.report",
    "verify": "run.runner",
    "StagedCache": "bundled.staged",
    "StagedGradients": "bundled.staged",
    "staged_backward": "bundled.staged",
    "staged_forward": "bundled.staged",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'softmax_verify' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"softmax_verify.{home}"), name)
    globals()[name] = value  # once: later lookups do not come here
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
