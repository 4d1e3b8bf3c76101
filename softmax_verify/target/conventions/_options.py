"""The reading: how the verifier read and called the code (the options are core.options)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Reading"]


@dataclass(frozen=True)
class Reading:
    """How the verifier read the target: stated in every report.

    ``forward`` and ``backward`` say what was called and where the result was
    taken from (``.forward(x) -> .output``); ``layout`` how the canonical (N, D)
    rows were laid out for the code; ``notes`` what the reader should know about
    the convention (e.g. that no elementwise derivative is softmax's gradient).
    """

    name: str
    kind: str
    forward: str
    backward: str | None
    grad: str | None
    grad_at: str | None
    layout: str
    notes: tuple[str, ...] = field(default_factory=tuple)
    #: How a target written with a library's ops was read (softmax_verify.target.autodiff).
    autodiff: str | None = None
    #: Which other libraries' arrays the code returned, read as numpy arrays
    #: (softmax_verify.target.arrays): known once the code has been called.
    arrays: str | None = None

    def describe(self) -> str:
        """One line: "Softmax: class, ...; forward ...; backward ...; grad vjp; axis -1"."""
        return f"{self.name}: {self.how()}"

    def how(self) -> str:
        """``describe()`` without the name: "class, ...; forward ...; ...; axis -1"."""
        parts = [self.autodiff or self.kind, f"forward {self.forward}"]
        if self.backward is not None:
            parts.append(f"backward {self.backward}")
            parts.append(f"grad {self.grad}" + (f" at {self.grad_at}" if self.grad_at else ""))
        parts.append(self.layout)
        if self.arrays:
            parts.append(self.arrays)
        return "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "forward": self.forward,
            "backward": self.backward,
            "grad": self.grad,
            "grad_at": self.grad_at,
            "layout": self.layout,
            "notes": list(self.notes),
            "autodiff": self.autodiff,
            "arrays": self.arrays,
            "text": self.describe(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Reading:
        """The Reading ``to_dict`` gave (it crosses from the child process as plain data)."""
        return cls(
            name=str(data["name"]),
            kind=str(data["kind"]),
            forward=str(data["forward"]),
            backward=None if data["backward"] is None else str(data["backward"]),
            grad=None if data["grad"] is None else str(data["grad"]),
            grad_at=None if data["grad_at"] is None else str(data["grad_at"]),
            layout=str(data["layout"]),
            notes=tuple(str(n) for n in data["notes"]),
            autodiff=None if data.get("autodiff") is None else str(data["autodiff"]),
            arrays=None if data.get("arrays") is None else str(data["arrays"]),
        )
