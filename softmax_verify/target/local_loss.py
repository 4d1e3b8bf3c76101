"""The cross-entropy code under test in this process, called through the canonical convention.

``softmax_verify.target.conventions`` reads loss functions, loss layers, gradient functions
and other layouts (and ``target.autodiff_loss`` framework code) into two canonical calls
on (N, C) logits: ``loss(x, labels)`` returning the loss (a scalar, or one per row in
the code's batch layout, flattened to (N,)), and ``grad(x, labels, upstream)`` returning
dx (N, C) and whether the backward wrote to what its forward left it.

Every call goes through the sandbox: the code receives copies of x, the labels and the
upstream (so it cannot corrupt the verifier's data, and writes into them are recorded
rather than felt), runs under a time limit, and what it returns is checked for type and
shape (``core.loss_implementation``) before any invariant looks at the numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
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
from softmax_verify.core.options import LabelForm, LossOptions, Reduction
from softmax_verify.target.mutation import same_bits
from softmax_verify.target.sandbox import call_limited

__all__ = ["LocalLossImplementation"]

A = NDArray[Any]


class LocalLossImplementation(LossImplementation):
    """A canonical ``loss`` (and optionally ``grad``) in this process, each call through the
    sandbox. ``loss(x, labels) -> loss``; ``grad(x, labels, upstream) -> (dx, cache
    written)``; ``takes_upstream``: whether the gradient uses the upstream it is given."""

    def __init__(
        self,
        loss: Callable[[A, A], object],
        grad: Callable[[A, A, A], tuple[object, bool]] | None = None,
        *,
        options: LossOptions | None = None,
        takes_upstream: bool = False,
        timeout: float | None = 10.0,
        name: str | None = None,
    ) -> None:
        if not callable(loss):
            raise TypeError(f"loss must be callable, got {type(loss).__name__}")
        if grad is not None and not callable(grad):
            raise TypeError(f"grad must be callable or None, got {type(grad).__name__}")
        if timeout is not None and not (isinstance(timeout, (int, float)) and timeout > 0):
            raise ValueError(
                f"timeout must be a positive number of seconds or None, got {timeout!r}"
            )
        chosen = options or LossOptions()
        self._loss, self._grad = loss, grad
        self._takes_upstream = bool(takes_upstream and grad is not None)
        self.labels: LabelForm = chosen.labels
        self.reduction: Reduction = chosen.reduction
        self.timeout = None if timeout is None else float(timeout)
        self.name: str = name or str(getattr(loss, "__qualname__", repr(loss)))

    @property
    def has_backward(self) -> bool:
        return self._grad is not None

    @property
    def takes_upstream(self) -> bool:
        return self._takes_upstream

    def loss(self, x: FloatArray, labels: A) -> LossCall:
        """The loss of copies of ``x`` and ``labels``, checked and copied; the flags say
        whether the code wrote to its copies."""
        given_x, given_labels = np.array(x, copy=True), np.array(labels, copy=True)
        raw = call_limited("forward", self._loss, given_x, given_labels, timeout=self.timeout)
        return LossCall(
            loss=checked_loss(raw, x.shape[0]),
            mutated_x=not same_bits(given_x, x),
            mutated_labels=not same_bits(given_labels, labels),
        )

    def grad(self, x: FloatArray, labels: A, upstream: A) -> GradCall:
        """dx at copies of ``x`` and ``labels`` for a copy of ``upstream``, checked and copied."""
        if self._grad is None:
            raise ImplementationError("backward", "was not given")
        given_x, given_labels = np.array(x, copy=True), np.array(labels, copy=True)
        given_up = np.array(upstream, copy=True)
        raw, cache_written = call_limited(
            "backward", self._grad, given_x, given_labels, given_up, timeout=self.timeout
        )
        return GradCall(
            dx=checked_dx(raw, x.shape),
            mutated_x=not same_bits(given_x, x),
            mutated_labels=not same_bits(given_labels, labels),
            mutated_upstream=not same_bits(given_up, np.asarray(upstream)),
            mutated_cache=bool(cache_written),
        )

    def loss_each(self, pairs: Sequence[tuple[FloatArray, A]]) -> list[FloatArray]:
        """``loss(x, labels).loss`` for each pair, in order: a call of the code of its own for
        each, on copies, under one time limit of ``timeout`` per call (a central difference
        makes hundreds: one timer for them all, not one each). Writes into the copies are not
        looked for here (``loss`` does)."""
        limit = None if self.timeout is None else self.timeout * max(len(pairs), 1)
        raw = call_limited("forward", self._each, pairs, timeout=limit)
        return [checked_loss(value, x.shape[0]) for value, (x, _) in zip(raw, pairs, strict=True)]

    def _each(self, pairs: Sequence[tuple[FloatArray, A]]) -> list[object]:
        return [self._loss(np.array(x, copy=True), np.array(lab, copy=True)) for x, lab in pairs]
