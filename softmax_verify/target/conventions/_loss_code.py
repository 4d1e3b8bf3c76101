"""Cross-entropy code under test, one call at a time, in its own convention and layout.

A ``LossCode`` runs the user's loss on logits and labels in the code's own layout and
returns what it returned (the loss: a scalar or one per row); its ``grad`` runs the loss
and then the code's backward, and returns what that computed (dx) and whether the
backward wrote to what its forward left it (the layer object's arrays, or the
probabilities handed back to it). The reader (``_loss_read``) decides which convention
applies and lays the canonical arrays out for it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from softmax_verify.core.errors import ImplementationError
from softmax_verify.target.conventions._code import (
    GRAD_NAMES,
    OUTPUT_NAMES,
    attribute_ids,
    dx_of,
    stored_name,
)
from softmax_verify.target.mutation import snapshot, unchanged

__all__ = [
    "LOSS_GRAD_NAMES",
    "LOSS_NAMES",
    "BackwardArgs",
    "FunctionLoss",
    "LayerLoss",
    "LossCode",
    "PairedLoss",
]

A = NDArray[Any]

#: Attributes a forward that returns None stores its loss in, most common first.
LOSS_NAMES: tuple[str, ...] = ("loss", "data_loss", "cost", "value", "output_loss", "loss_value")
#: Attributes a backward that returns None stores dx in (a loss layer's own names first).
LOSS_GRAD_NAMES: tuple[str, ...] = ("dinputs", "dlogits", "dscores", "dx", *GRAD_NAMES[2:])
#: What a loss layer's backward is given: the upstream, nothing, the inputs again, or the
#: forward's output probabilities and the labels (docs/conventions.md).
BackwardArgs = Literal["upstream", "nothing", "inputs", "probs"]


def _first(result: object) -> object:
    """The loss of a result that may be ``(loss, something)``."""
    if isinstance(result, tuple) and len(result) == 2 and not hasattr(result, "_fields"):
        return result[0]
    return result


class LossCode:
    """One convention's calls, in the code's layout; subclasses say how."""

    takes_upstream: bool = False
    has_backward: bool = False

    def loss(self, x: A, labels: A) -> object:
        raise NotImplementedError

    def grad(self, x: A, labels: A, upstream: object) -> tuple[object, bool]:
        """(what the backward computed, whether it wrote to its forward's arrays)."""
        raise NotImplementedError


class FunctionLoss(LossCode):
    """``f(x, labels) -> loss`` or ``-> (loss, dx)`` (``pair``; dx may be a mapping or an
    object with ``dx``, as a backward's result)."""

    def __init__(self, function: Callable[..., Any], *, pair: bool) -> None:
        self._function, self.has_backward = function, pair

    def loss(self, x: A, labels: A) -> object:
        result = self._function(x, labels)
        return _first(result) if self.has_backward else result

    def grad(self, x: A, labels: A, upstream: object) -> tuple[object, bool]:
        result = self._function(x, labels)
        if not (isinstance(result, tuple) and len(result) == 2):
            got = type(result).__name__
            raise ImplementationError("backward", f"returned {got}; expected a pair (loss, dx)")
        return dx_of(result[1]), False


class PairedLoss(LossCode):
    """A loss function ``f(x, labels)`` and a gradient function ``g(x, labels)`` (or
    ``g(x, labels, dout)``: ``takes_upstream``), each called on its own."""

    def __init__(
        self, loss: Callable[..., Any], grad: Callable[..., Any], *, takes_upstream: bool
    ) -> None:
        self._loss, self._grad = loss, grad
        self.takes_upstream, self.has_backward = takes_upstream, True

    def loss(self, x: A, labels: A) -> object:
        return _first(self._loss(x, labels))

    def grad(self, x: A, labels: A, upstream: object) -> tuple[object, bool]:
        args = (x, labels, upstream) if self.takes_upstream else (x, labels)
        return dx_of(self._grad(*args)), False


class LayerLoss(LossCode):
    """A loss layer: a fresh object per call (``make``) whose ``forward`` method takes
    ``(x, labels)`` and returns the loss, ``(loss, probs)``, or None (the loss stored, e.g.
    ``self.loss``), and whose ``backward`` method takes what ``args`` says and returns dx
    or stores it (``self.dinputs``). ``loss_attr``, ``probs_attr``, ``dx_attr``: the
    attributes read when a method stores rather than returns ('' to search by shape)."""

    def __init__(
        self,
        make: Callable[[], object],
        forward: str,
        backward: str | None,
        args: BackwardArgs,
        *,
        loss_attr: str = "",
        probs_attr: str = "",
        dx_attr: str = "",
    ) -> None:
        self._make, self._fwd, self._bwd, self._args = make, forward, backward, args
        self._loss_attr, self._probs_attr, self._dx_attr = loss_attr, probs_attr, dx_attr
        self.has_backward = backward is not None
        self.takes_upstream = args == "upstream"

    def _forward(self, x: A, labels: A) -> tuple[object, object, object]:
        """(the layer, its loss, the probabilities it returned or None)."""
        layer = self._make()
        result = getattr(layer, self._fwd)(x, labels)
        probs = None
        if isinstance(result, tuple) and len(result) == 2 and not hasattr(result, "_fields"):
            result, probs = result
        if result is None:
            name = self._loss_attr or next(
                (n for n in LOSS_NAMES if getattr(layer, n, None) is not None), ""
            )
            if not name:
                raise ImplementationError(
                    "forward",
                    f".{self._fwd}(x, labels) returned None and set none of "
                    f"{', '.join(LOSS_NAMES)}; expected it to return the loss or store it "
                    f"(e.g. self.loss)",
                )
            result = getattr(layer, name)
        return layer, result, probs

    def loss(self, x: A, labels: A) -> object:
        return self._forward(x, labels)[1]

    def grad(self, x: A, labels: A, upstream: object) -> tuple[object, bool]:
        assert self._bwd is not None
        layer, _, probs = self._forward(x, labels)
        if self._args == "probs" and not isinstance(probs, np.ndarray):
            probs = self._stored(layer, {}, x.shape, self._probs_attr, OUTPUT_NAMES, "forward")
        cache = snapshot((layer, probs))
        before = attribute_ids(layer)
        method = getattr(layer, self._bwd)
        if self._args == "upstream":
            result = dx_of(method(upstream))
        elif self._args == "nothing":
            result = dx_of(method())
        elif self._args == "inputs":
            result = dx_of(method(x, labels))
        else:
            result = dx_of(method(probs, labels))
        if result is None:
            names = LOSS_GRAD_NAMES
            result = self._stored(layer, before, x.shape, self._dx_attr, names, "backward")
        return result, not unchanged(cache)

    def _stored(
        self,
        layer: object,
        before: dict[str, int],
        shape: tuple[int, ...],
        preferred: str,
        names: tuple[str, ...],
        role: str,
    ) -> object:
        """The array attribute of ``layer`` of ``shape`` a call stored (``preferred`` first)."""
        value = getattr(layer, preferred, None) if preferred else None
        if isinstance(value, np.ndarray) and value.shape == shape:
            return value
        name = stored_name(layer, before, shape, names)
        if not name:
            what = "the probabilities" if role == "forward" else "dx"
            method = self._fwd if role == "forward" else self._bwd
            raise ImplementationError(
                role,
                f".{method} left no array attribute of shape {shape} for {what}; expected it "
                f"to return it or store it (e.g. self.{names[0]})",
            )
        return getattr(layer, name)
