"""What the code under test computes: ``softmax`` (probabilities), ``log_softmax``, or
``cross_entropy`` (softmax fused with the cross-entropy loss: a loss of logits and labels,
and its gradient with respect to the logits).

The kind travels as one string parameter (``kind="softmax"|"log_softmax"|"cross_entropy"``)
through ``verify``, the command line (``--kind``) and ``SoftmaxContract.kind``, and picks
the invariant set (``softmax_verify.invariants.invariants_for``). The two softmax kinds
call the code as a forward and a backward (``core.implementation``); ``cross_entropy``
calls it as a loss and its gradient (``core.loss_implementation``).
"""

from __future__ import annotations

from typing import Literal

__all__ = ["KINDS", "SOFTMAX_KINDS", "Kind", "check_kind"]

Kind = Literal["softmax", "log_softmax", "cross_entropy"]

#: Every kind, the default first.
KINDS: tuple[Kind, ...] = ("softmax", "log_softmax", "cross_entropy")
#: The kinds whose code is a forward ``f(x)`` and a backward ``B(dout, cache)``.
SOFTMAX_KINDS: tuple[Kind, ...] = ("softmax", "log_softmax")


def check_kind(kind: object, name: str = "kind") -> Kind:
    """``kind`` itself if it names a kind; TypeError/ValueError naming ``name`` otherwise."""
    if not isinstance(kind, str):
        raise TypeError(f"{name} must be one of {', '.join(KINDS)} (a str), got {kind!r}")
    for known in KINDS:
        if kind == known:
            return known
    raise ValueError(f"{name} must be one of {', '.join(KINDS)}; got {kind!r}")
