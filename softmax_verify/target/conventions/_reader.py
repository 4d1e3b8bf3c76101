r"""The canonical pair the invariants use, on top of any ``Code``.

``forward(x) -> (y, cache)`` and ``backward(dout, cache) -> dx`` on (N, D)
arrays with softmax along the last axis. Per unit (the whole array in the code's
layout, or one 1-D row with ``rowwise``) the backward is

- vjp: :math:`dx = \mathrm{backward}(dout)`;
- elementwise: :math:`dx = dout \odot g` with :math:`g = \mathrm{grad}(x \text{ or } y)`;
- jacobian: :math:`dx_j = \sum_i dout_i J_{ij}` per row, :math:`J_{ij} = \partial y_i/\partial x_j`.

The cache is a ``ReadCache``: the code's own state (its cache or its layer object),
the y it returned and a private copy of x. The implementation's mutation check
looks at the arrays inside it, so writing into any of them is seen; binding new
attributes on a layer object is not a write into an array and is not mutation.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from softmax_verify.core.errors import ImplementationError
from softmax_verify.target.arrays import ArrayLog
from softmax_verify.target.conventions._code import Code
from softmax_verify.target.conventions._layout import Layout

__all__ = ["ReadCache", "Reader"]

A = NDArray[Any]


class ReadCache:
    """What one canonical forward call leaves for its backward (a verifier object)."""

    def __init__(self, x: list[A], y: list[A], state: list[object]) -> None:
        self.x, self.y, self.state = x, y, state


def _array(
    role: str, what: str, value: object, shape: tuple[int, ...], expected: str = "the input's shape"
) -> A:
    """``value``, a numpy array of ``shape`` (another library's array already read)."""
    if not isinstance(value, np.ndarray):
        got = "None" if value is None else type(value).__name__
        raise ImplementationError(role, f"returned {got} for {what}; expected a numpy array")
    if value.shape != shape:
        raise ImplementationError(
            role, f"returned {what} of shape {value.shape}; expected {shape} ({expected})"
        )
    return value


class Reader:
    """Canonical forward/backward over ``code``, laid out by ``layout`` or row by row;
    ``arrays`` reads what the code returns when it is another library's array."""

    def __init__(
        self, code: Code, layout: Layout, *, rowwise: bool, grad: str | None, arrays: ArrayLog
    ) -> None:
        self.code, self.layout, self.rowwise, self.grad = code, layout, rowwise, grad
        self.arrays = arrays

    def _units(self, a: A) -> list[A]:
        return list(a) if self.rowwise else [self.layout.to_code(a)]

    def _join(self, parts: list[A]) -> A:
        if self.rowwise:
            return np.stack(parts)
        return self.layout.to_canonical(parts[0])

    def forward(self, x: A) -> tuple[A, ReadCache]:
        units = self._units(x)
        copies = [u.copy() for u in units]  # grad at x reads x as it was given
        ys: list[A] = []
        states: list[object] = []
        for unit in units:
            y, state = self.code.forward(unit)
            ys.append(_array("forward", "y", self.arrays.numpy("forward", "y", y), unit.shape))
            states.append(state)
        return self._join(ys), ReadCache(copies, ys, states)

    def backward(self, dout: A, cache: ReadCache) -> A:
        parts = []
        for unit, x, y, state in zip(self._units(dout), cache.x, cache.y, cache.state, strict=True):
            out = self.arrays.numpy("backward", "dx", self.code.backward(unit, x, y, state))
            parts.append(self._dx(unit, out))
        return self._join(parts)

    def _kind(self, unit: A, out: object) -> str:
        if self.grad is not None or self.code.backward_kind == "vjp":
            return self.grad or "vjp"
        d = unit.shape[self.layout.axis if not self.rowwise else 0]
        if isinstance(out, np.ndarray) and out.ndim == unit.ndim + 1 and out.shape[-2:] == (d, d):
            return "jacobian"
        return "elementwise"

    def _dx(self, dout: A, out: object) -> A:
        kind = self._kind(dout, out)
        if kind == "vjp":
            return _array("backward", "dx", out, dout.shape)
        if kind == "elementwise":
            g = _array("backward", "the elementwise derivative", out, dout.shape)
            return np.asarray(dout * g)
        rows = dout if self.rowwise else self.layout.batch_first(dout)
        d = rows.shape[-1]
        expected = "one (D, D) Jacobian per row" + (
            "" if self.rowwise else "; --rowwise if per row"
        )
        jac = _array("backward", "the Jacobian", out, (*rows.shape[:-1], d, d), expected)
        dx = np.einsum("...ij,...i->...j", jac, rows)
        return dx if self.rowwise else np.moveaxis(dx, -1, self.layout.axis)
