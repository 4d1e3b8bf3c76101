"""What the code under test computes: ``softmax`` (probabilities) or ``log_softmax``.

The kind travels as one string parameter (``kind="softmax"|"log_softmax"``) through
``verify``, the command line (``--kind``) and ``SoftmaxContract.kind``, and picks the
invariant set (``softmax_verify.invariants.invariants_for``).
"""

from __future__ import annotations

from typing import Literal

__all__ = ["KINDS", "Kind", "check_kind"]

Kind = Literal["softmax", "log_softmax"]

#: Every kind, the default first.
KINDS: tuple[Kind, ...] = ("softmax", "log_softmax")


def check_kind(kind: object, name: str = "kind") -> Kind:
    """``kind`` itself if it names a kind; TypeError/ValueError naming ``name`` otherwise."""
    if not isinstance(kind, str):
        raise TypeError(f"{name} must be one of {', '.join(KINDS)} (a str), got {kind!r}")
    for known in KINDS:
        if kind == known:
            return known
    raise ValueError(f"{name} must be one of {', '.join(KINDS)}; got {kind!r}")
