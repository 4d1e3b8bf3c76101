"""The cross-entropy code under test as the verifier sees it: a protocol, its calls, their checks.

``LossImplementation`` is what every invariant and diagnosis of the ``cross_entropy`` kind
calls, and all they depend on: the in-process implementation
(``target.local_loss.LocalLossImplementation``) and the one in a child process
(``isolation.remote_loss.RemoteLossImplementation``) both satisfy it. Its calls are in the
canonical convention, whatever the code's own:

- ``loss(x, labels)``: ``x`` an (N, C) array of logits, ``labels`` (N,) int64 class
  indices or (N, C) rows in x's dtype (``Options.labels``); the call returns the loss,
  checked (``checked_loss``: a scalar, or one value per row) and copied, and whether the
  code wrote to its copies of ``x`` or ``labels``;
- ``grad(x, labels, upstream)``: a fresh loss on ``(x, labels)`` and then its backward:
  ``dx`` (N, C), checked and copied. ``upstream`` is the scalar the reduced loss is
  multiplied by (0-d, for ``reduction`` mean and sum) or the vector of the rows' weights
  ((N,), for none). Code whose backward takes no upstream (``takes_upstream`` False)
  computes the gradient for the upstream 1 (mean, sum) or ones (none), whatever is passed;
- ``loss_each(pairs)``: ``loss(x, labels).loss`` for each pair, each a call of its own (the
  child process makes them all in one round trip: a central difference needs hundreds).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from softmax_verify.core.dtypes import is_float_dtype
from softmax_verify.core.errors import ImplementationError
from softmax_verify.core.implementation import FloatArray, checked_array
from softmax_verify.core.options import LabelForm, Reduction

__all__ = [
    "GradCall",
    "LossCall",
    "LossImplementation",
    "checked_dx",
    "checked_loss",
    "unit_upstream",
]


@dataclass(frozen=True)
class LossCall:
    """One loss call: the loss (a private copy; 0-d or (N,)) and whether it wrote to its
    inputs."""

    loss: FloatArray
    mutated_x: bool = False
    mutated_labels: bool = False


@dataclass(frozen=True)
class GradCall:
    """One gradient call: ``dx`` (a private copy, (N, C)) and whether the code wrote to ``x``,
    ``labels``, the upstream, or what its forward left for its backward (the cache: the
    layer object's arrays, the probabilities passed back to it)."""

    dx: FloatArray
    mutated_x: bool = False
    mutated_labels: bool = False
    mutated_upstream: bool = False
    mutated_cache: bool = False


def checked_loss(value: object, rows: int) -> FloatArray:
    """``value`` as a floating array of shape () or (``rows``,), copied; else the
    ImplementationError of the loss saying what it returned instead.

    A numpy scalar (``np.float32(...)``: what ``np.sum(a) / N`` gives) is a 0-d array of its
    dtype; a Python float (``loss.item()``) has none and counts as float64.
    """
    if isinstance(value, float) and not isinstance(value, np.generic):
        value = np.asarray(value, dtype=np.float64)
    elif isinstance(value, np.generic):
        value = np.asarray(value)
    if value is None:
        raise ImplementationError("forward", "returned None for the loss; expected a number")
    if not isinstance(value, np.ndarray):
        raise ImplementationError(
            "forward", f"returned {type(value).__name__} for the loss; expected a numpy array"
        )
    if not is_float_dtype(value.dtype):
        raise ImplementationError(
            "forward", f"returned the loss with dtype {value.dtype}; expected a floating dtype"
        )
    if value.shape not in ((), (rows,)):
        raise ImplementationError(
            "forward",
            f"returned a loss of shape {value.shape}; expected a scalar () or one value per "
            f"row ({rows},)",
        )
    return np.array(value, copy=True)


def checked_dx(value: object, shape: tuple[int, ...], *, copy: bool = True) -> FloatArray:
    """``value`` if it is a floating numpy array of the logits' ``shape`` (``checked_array``)."""
    return checked_array("backward", "dx", value, shape, copy=copy)


def unit_upstream(rows: int, reduction: Reduction, dtype: np.dtype[Any]) -> NDArray[Any]:
    """The upstream a backward without one computes for: 1 (0-d) for mean and sum, ones
    ((N,)) for none, in ``dtype``."""
    shape: tuple[int, ...] = (rows,) if reduction == "none" else ()
    return np.ones(shape, dtype=dtype)


@runtime_checkable
class LossImplementation(Protocol):
    """A cross-entropy loss (and optionally its gradient) under test, called safely.

    Every output is checked (``checked_loss``, ``checked_dx``) before any invariant looks at
    its numbers; a call that raises, overruns its time limit or returns the wrong type
    raises ``ImplementationError`` (``CallTimeout`` for an overrun).
    """

    #: The target's name, as reports show it.
    name: str
    #: Each call's time limit in seconds (None: none).
    timeout: float | None
    #: What the label argument is (``Options.labels``) and which scalar the gradient is the
    #: gradient of (``Options.reduction``): the code was read for these.
    labels: LabelForm
    reduction: Reduction

    @property
    def has_backward(self) -> bool:
        """Whether a gradient was given (the gradient invariants are skipped without one)."""
        ...

    @property
    def takes_upstream(self) -> bool:
        """Whether the gradient takes the upstream (``backward(dout=1)``, autodiff)."""
        ...

    def loss(self, x: FloatArray, labels: NDArray[Any]) -> LossCall:
        """The loss of copies of ``x`` and ``labels``; the flags say what the code wrote to."""
        ...

    def grad(self, x: FloatArray, labels: NDArray[Any], upstream: NDArray[Any]) -> GradCall:
        """dx of the loss at copies of ``x`` and ``labels`` for ``upstream`` (module doc)."""
        ...

    def loss_each(self, pairs: Sequence[tuple[FloatArray, NDArray[Any]]]) -> list[FloatArray]:
        """``loss(x, labels).loss`` for each pair, in order, each a call of its own."""
        ...
