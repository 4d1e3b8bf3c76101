"""The cross-entropy implementation under test, in a child process, behind ``LossImplementation``.

``RemoteLossImplementation`` has the interface of ``core.loss_implementation`` (``loss``,
``grad``, ``loss_each``, ``has_backward``, ``takes_upstream``), so the cross-entropy
invariants and diagnoses run unchanged in the verifier's process while the target lives
in the child; its lifetime and the requests are ``channel.ChildTarget``'s. Logits, labels
(int64 indices or rows) and the upstream travel as encoded arrays (``wire``). What comes
back is checked here again, as if it came from the code itself: the loss a floating
scalar or one value per row, dx a floating array of the logits' shape, each flag a bool.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from numpy.typing import NDArray

from softmax_verify.core.errors import ImplementationError
from softmax_verify.core.implementation import FloatArray
from softmax_verify.core.loss_implementation import (
    GradCall,
    LossCall,
    LossImplementation,
    checked_dx,
    checked_loss,
)
from softmax_verify.core.options import LabelForm, Reduction
from softmax_verify.isolation.channel import ChildTarget, array_reply
from softmax_verify.isolation.wire import encode_array
from softmax_verify.target.load import TargetSpec

__all__ = ["RemoteLossImplementation"]


def _flags(reply: tuple[Any, ...], role: str) -> tuple[bool, ...]:
    """The mutation flags of a reply: bools, or the channel is not the protocol's."""
    if not all(isinstance(flag, bool) for flag in reply):
        raise ImplementationError(role, "corrupted the verifier's channel")
    return tuple(reply)


class RemoteLossImplementation(ChildTarget, LossImplementation):
    """The cross-entropy target ``spec`` names, loaded and called in a child process."""

    def __init__(self, spec: TargetSpec) -> None:
        super().__init__(spec)
        self.labels: LabelForm = spec.options.labels
        self.reduction: Reduction = spec.options.reduction

    @property
    def takes_upstream(self) -> bool:
        return self._takes_upstream

    def loss(self, x: FloatArray, labels: NDArray[Any]) -> LossCall:
        """``loss(x, labels)`` in the child; the loss checked here."""
        message = ("loss", encode_array(x), encode_array(labels))
        reply = self._request("forward", message, x.nbytes + labels.nbytes)
        loss = checked_loss(array_reply("forward", reply[1]), x.shape[0])
        mutated_x, mutated_labels = _flags(reply[2:], "forward")
        return LossCall(loss, mutated_x, mutated_labels)

    def grad(self, x: FloatArray, labels: NDArray[Any], upstream: NDArray[Any]) -> GradCall:
        """``grad(x, labels, upstream)`` in the child; dx checked here."""
        if not self._has_backward:
            raise ImplementationError("backward", "was not given")
        message = ("grad", encode_array(x), encode_array(labels), encode_array(upstream))
        reply = self._request("backward", message, 2 * x.nbytes + labels.nbytes)
        dx = checked_dx(array_reply("backward", reply[1]), x.shape, copy=False)
        return GradCall(dx, *_flags(reply[2:], "backward"))

    def loss_each(self, pairs: Sequence[tuple[FloatArray, NDArray[Any]]]) -> list[FloatArray]:
        """``loss(x, labels).loss`` for each pair, every call in the child, in one round trip;
        the first call that fails ends it, with that call's error."""
        message = ("loss_each", [(encode_array(x), encode_array(lab)) for x, lab in pairs])
        nbytes = sum(x.nbytes + lab.nbytes for x, lab in pairs)
        reply = self._request("forward", message, nbytes, calls=max(len(pairs), 1))
        losses = reply[1]
        if not isinstance(losses, list) or len(losses) != len(pairs):
            self.kill()
            raise ImplementationError("forward", "corrupted the verifier's channel")
        return [
            checked_loss(array_reply("forward", value), x.shape[0])
            for value, (x, _) in zip(losses, pairs, strict=True)
        ]
