"""Exceptions that carry the data explaining them, and that data (``Mismatch``: the worst
entries of a comparison, which ``compare`` finds).

``InvariantViolation`` is what a check raises when an implementation breaks a
property (an ``AssertionError``, so pytest and Hypothesis treat it as a test
failure); ``ImplementationError`` is what the sandbox raises when the code under
test misbehaves rather than computes a wrong number (raises, returns the wrong
type or shape, runs past its time limit).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["CallTimeout", "ImplementationError", "InvariantViolation", "Mismatch", "NotApplicable"]


@dataclass(frozen=True)
class Mismatch:
    """The entries of ``actual`` farther from ``expected`` than their tolerance."""

    what: str
    count: int
    total: int
    max_abs_error: float
    max_rel_error: float
    worst_index: tuple[int, ...]
    actual: float
    expected: float
    tolerance: float

    def describe(self) -> str:
        percent = 100.0 * self.count / max(self.total, 1)
        return (
            f"{self.what}: not equal within the derived tolerance\n"
            f"Mismatched elements: {self.count} / {self.total} ({percent:.3g}%)\n"
            f"Max absolute difference: {self.max_abs_error:.6g}\n"
            f"Max relative difference: {self.max_rel_error:.6g}\n"
            f"Worst at index {self.worst_index}: actual {self.actual!r}, "
            f"expected {self.expected!r}, tolerance {self.tolerance:.3g}"
        )


class InvariantViolation(AssertionError):
    """A property does not hold; ``mismatch`` holds the worst entry when there is one."""

    def __init__(
        self,
        invariant: str,
        message: str,
        *,
        mismatch: Mismatch | None = None,
        stage: str | None = None,
        location: str | None = None,
    ) -> None:
        self.invariant = invariant
        self.message = message
        self.mismatch = mismatch
        self.stage = stage
        #: ``file:line`` in the implementation's source where the wrong value is computed.
        self.location = location
        #: The failing case, attached by the runner (the minimal one after shrinking).
        self.case: dict[str, Any] | None = None
        text = f"{invariant}: {message}"
        if location is not None:
            text += f"\nat {location}"
        if mismatch is not None:
            text += "\n" + mismatch.describe()
        super().__init__(text)


class ImplementationError(Exception):
    """The implementation under test misbehaved (``role`` is "forward" or "backward").

    ``location`` is ``file:line in function`` of the innermost frame of the
    implementation's own code when it raised, so the report can point at it.
    """

    def __init__(self, role: str, reason: str, *, location: str | None = None) -> None:
        self.role = role
        self.reason = reason
        self.location = location
        #: The failing case, attached by the runner (the minimal one after shrinking).
        self.case: dict[str, Any] | None = None
        where = f" (at {location})" if location else ""
        super().__init__(f"{role} {reason}{where}")


class CallTimeout(ImplementationError):
    """One call of the implementation ran longer than the time limit."""

    def __init__(self, role: str, seconds: float) -> None:
        self.seconds = seconds
        super().__init__(role, f"did not return within {seconds:g} s")


class NotApplicable(Exception):
    """The invariant cannot run on this implementation (reported as skipped, with the reason)."""
