r"""The canonical loss calls the cross-entropy invariants use, on top of any ``LossCode``.

Canonical: (N, C) logits with the classes along the last axis; labels (N,) class
indices or (N, C) rows; the loss a scalar or (N,); dx (N, C); the upstream 0-d (mean,
sum) or (N,) (none). In the code's own layout (``--axis``, ``--rank``: ``_layout``) the
logits, one-hot and probability rows are laid out as a softmax's rows are; index labels,
a per-row loss and an upstream vector take the layout's batch shape (the logits' shape
without the class axis), in the same C order, so torch's (N, C, d1) convention, with
labels (N, d1), is rank 3 and axis 1. All of it is reshapes and one ``moveaxis``: views,
nothing rounded. A scalar upstream reaches the code as a numpy scalar of x's dtype, as
``backward(dout=1.0)`` expects a number.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from softmax_verify.core.errors import ImplementationError
from softmax_verify.core.loss_implementation import LossImplementation
from softmax_verify.core.options import LossOptions, ReadOptions
from softmax_verify.target.conventions._layout import Layout, batch_shape
from softmax_verify.target.conventions._loss_code import LossCode
from softmax_verify.target.conventions._loss_read import read_loss
from softmax_verify.target.conventions._options import Reading
from softmax_verify.target.local_loss import LocalLossImplementation

__all__ = ["LossReader", "loss_implementation_from"]

A = NDArray[Any]


class LossReader:
    """Canonical ``loss`` and ``grad`` over ``code``, laid out by ``layout``."""

    def __init__(self, code: LossCode, layout: Layout) -> None:
        self.code, self.layout = code, layout

    def _batch(self, rows: int) -> tuple[int, ...]:
        return batch_shape(rows, self.layout.rank - 1)

    def _labels(self, labels: A) -> A:
        if labels.ndim == 1:
            return labels.reshape(self._batch(labels.shape[0]))
        return self.layout.to_code(labels)

    def loss(self, x: A, labels: A) -> object:
        """The code's loss of ``(x, labels)``; a per-row loss in the batch shape as (N,)."""
        raw = self.code.loss(self.layout.to_code(x), self._labels(labels))
        batch = self._batch(x.shape[0])
        if isinstance(raw, np.ndarray) and raw.ndim == len(batch) > 1 and raw.shape == batch:
            return raw.reshape(-1)
        return raw

    def grad(self, x: A, labels: A, upstream: A) -> tuple[A, bool]:
        """dx (N, C) of the code's backward at ``(x, labels)`` for ``upstream``, and whether
        it wrote to its forward's arrays."""
        code_x = self.layout.to_code(x)
        given: object = upstream[()] if upstream.ndim == 0 else upstream.reshape(
            self._batch(x.shape[0])
        )  # fmt: skip
        raw, written = self.code.grad(code_x, self._labels(labels), given)
        if not isinstance(raw, np.ndarray):
            got = "None" if raw is None else type(raw).__name__
            raise ImplementationError("backward", f"returned {got} for dx; expected a numpy array")
        if raw.shape != code_x.shape:
            raise ImplementationError(
                "backward", f"returned dx of shape {raw.shape}; expected {code_x.shape} (x's shape)"
            )
        return self.layout.to_canonical(raw), written


def loss_implementation_from(
    forward: object,
    backward: Callable[..., Any] | None = None,
    read: ReadOptions | None = None,
    loss: LossOptions | None = None,
    *,
    timeout: float | None = 10.0,
    name: str | None = None,
) -> tuple[LossImplementation, Reading]:
    """The ``LossImplementation`` of a cross-entropy ``forward`` (a loss function, a loss
    layer class or instance, or a ``LossCode`` of a framework target) and ``backward`` (a
    gradient function or None), read as ``read`` and ``loss`` say, and the ``Reading``.
    A ``LossImplementation`` given as ``forward`` is already read: returned as it is."""
    read, loss = read or ReadOptions(), loss or LossOptions()
    if isinstance(forward, LossImplementation):
        label = name or forward.name
        described = Reading(label, "implementation", "as built", "as built" if
                            forward.has_backward else None, None, None, "axis -1")  # fmt: skip
        return forward, described
    label = name or str(getattr(forward, "__qualname__", type(forward).__qualname__))
    code, reading = read_loss(forward, backward, read, loss, name=label)
    reader = LossReader(code, Layout(read.rank, read.axis))
    impl = LocalLossImplementation(
        reader.loss,
        reader.grad if code.has_backward else None,
        options=loss,
        takes_upstream=code.takes_upstream,
        timeout=timeout,
        name=reading.name,
    )
    return impl, reading
