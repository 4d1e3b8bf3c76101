"""The reading options (how to call the code) and the reading (how it was called)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["GRADS", "GRAD_AT", "ReadOptions", "Reading"]

#: What a backward computes: a vector-Jacobian product, an elementwise derivative g with
#: dx = dout * g, or the Jacobian J with dx = J^T dout per row.
GRADS: tuple[str, ...] = ("vjp", "elementwise", "jacobian")
#: What an elementwise or Jacobian function receives: the forward's input or its output.
GRAD_AT: tuple[str, ...] = ("x", "y")
#: Ranks of the code's own layout that can be checked (attention scores are rank 4).
RANKS: tuple[int, ...] = (2, 3, 4)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class ReadOptions:
    """How to read the code under test; the same options as the command line's.

    - ``grad``: what the backward computes, one of ``GRADS``; None detects it where the
      code makes it unambiguous (a method named gradient or derivative, a function of
      one array, a returned (..., D, D) array) and is vjp otherwise.
    - ``grad_at``: what an elementwise or Jacobian function receives, "x" or "y"; None
      means "x". A method without parameters reads its object's state instead.
    - ``rowwise``: the code is written for one 1-D row; it is called once per row.
    - ``axis``: the softmax axis in the code's own layout (default -1).
    - ``rank``: the rank of the code's own layout, 2, 3 or 4 (default 2).
    """

    grad: str | None = None
    grad_at: str | None = None
    rowwise: bool = False
    axis: int = -1
    rank: int = 2

    def __post_init__(self) -> None:
        if self.grad is not None and self.grad not in GRADS:
            raise ValueError(f"grad must be one of {', '.join(GRADS)} or None, got {self.grad!r}")
        if self.grad_at is not None and self.grad_at not in GRAD_AT:
            raise ValueError(f"grad_at must be 'x', 'y' or None, got {self.grad_at!r}")
        if self.grad_at is not None and self.grad == "vjp":
            raise ValueError(
                f"grad_at={self.grad_at!r} says what an elementwise or Jacobian function "
                f"receives; it does not apply with grad='vjp'"
            )
        if not isinstance(self.rowwise, bool):
            raise TypeError(f"rowwise must be a bool, got {self.rowwise!r}")
        if not _is_int(self.rank) or self.rank not in RANKS:
            raise ValueError(f"rank must be 2, 3 or 4, got {self.rank!r}")
        if not _is_int(self.axis) or not -self.rank <= self.axis < self.rank:
            raise ValueError(
                f"axis must be an int in [{-self.rank}, {self.rank - 1}] for rank "
                f"{self.rank}, got {self.axis!r}"
            )
        if self.rowwise and (self.rank != 2 or self.axis not in (-1, 1)):
            raise ValueError(
                f"rowwise=True calls code written for one 1-D row: axis and rank do not "
                f"apply, got axis={self.axis!r}, rank={self.rank!r}"
            )

    @property
    def canonical_axis(self) -> int:
        """``axis`` as a non-negative index into the code's layout."""
        return self.axis % self.rank


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
    #: How a target written with torch or jax ops was read (softmax_verify.target.autodiff).
    autodiff: str | None = None

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
        )
