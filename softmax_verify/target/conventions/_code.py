"""The code under test, one call at a time, in its own convention.

A ``Code`` runs the user's forward on one array in the code's own layout (or one
1-D row) and returns ``(y, state)``; its ``backward`` gets that state back, with
the upstream gradient, a private copy of x and the y it returned, and returns
what the code's backward computes: dx (vjp), an elementwise derivative g, or a
Jacobian. The reader (``_reader``) turns those into the canonical pair.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from numpy.typing import NDArray

from softmax_verify.core.errors import ImplementationError
from softmax_verify.core.implementation import lookup
from softmax_verify.target.arrays import is_array

__all__ = [
    "GRAD_NAMES",
    "OUTPUT_NAMES",
    "Code",
    "FunctionCode",
    "LayerCode",
    "attribute_ids",
    "dx_of",
    "fresh",
    "stored_name",
]

A = NDArray[Any]

#: Attributes a forward that returns None stores its output in, most common first.
OUTPUT_NAMES: tuple[str, ...] = (
    "output", "out", "y", "probs", "probabilities", "outputs", "a", "activation", "s", "result",
)  # fmt: skip
#: Attributes a backward that returns None stores dx in.
GRAD_NAMES: tuple[str, ...] = (
    "dinputs", "dx", "grad", "dinput", "d_inputs", "grad_input", "dX", "delta", "dz", "gradient",
)  # fmt: skip


class Code:
    """One convention's calls; subclasses say how."""

    #: "vjp" (backward(dout) -> dx) or "at" (an elementwise or Jacobian function of x or y).
    backward_kind: str = "vjp"
    grad_at: str = "x"

    def forward(self, x: A) -> tuple[object, object]:
        raise NotImplementedError

    def backward(self, dout: A, x: A, y: A, state: object) -> object:
        raise NotImplementedError

    def _at(self, x: A, y: A) -> A:
        return y if self.grad_at == "y" else x


def dx_of(result: object) -> object:
    """dx from what a vjp backward returned: the array, or the 'dx' of a mapping/object."""
    if is_array(result):
        return result
    if isinstance(result, Mapping) or hasattr(result, "dx"):
        return lookup(result, "dx")
    return result


class FunctionCode(Code):
    """``forward(x) -> y | (y, cache)``; ``backward(dout, cache)`` (``backward(cache, dout)``
    when ``cache_first``: its parameter names say so) or ``grad(x or y)``."""

    def __init__(
        self,
        forward: Callable[..., Any],
        backward: Callable[..., Any] | None,
        backward_kind: str,
        grad_at: str,
        *,
        cache_first: bool = False,
    ) -> None:
        self._forward, self._backward = forward, backward
        self.backward_kind, self.grad_at = backward_kind, grad_at
        self.cache_first = cache_first

    def forward(self, x: A) -> tuple[object, object]:
        result = self._forward(x)
        if isinstance(result, tuple) and len(result) == 2 and not hasattr(result, "_fields"):
            y, cache = result
            return y, (y if cache is None else cache)
        return result, result

    def backward(self, dout: A, x: A, y: A, state: object) -> object:
        assert self._backward is not None
        if self.backward_kind == "vjp":
            args = (state, dout) if self.cache_first else (dout, state)
            return dx_of(self._backward(*args))
        return self._backward(self._at(x, y))


def stored_name(
    obj: object, before: dict[str, int], shape: tuple[int, ...], names: Sequence[str]
) -> str:
    """The attribute of ``obj`` holding the call's array: one it bound during the call, of
    ``shape``, a known name first; else a known name holding such an array; else ''."""
    state: dict[str, object] = getattr(obj, "__dict__", {})
    fits = {k for k, v in state.items() if _shaped(v, shape)}
    bound = [k for k in state if k in fits and before.get(k) != id(state[k])]
    for group in (bound, list(fits)):
        for name in names:
            if name in group:
                return name
        if group:
            return group[-1]
    return ""


def _shaped(value: object, shape: tuple[int, ...]) -> bool:
    """An array (numpy's or another library's) of ``shape``."""
    return is_array(value) and tuple(getattr(value, "shape", ())) == shape


def attribute_ids(obj: object) -> dict[str, int]:
    return {k: id(v) for k, v in getattr(obj, "__dict__", {}).items()}


class LayerCode(Code):
    """A layer object: a fresh one per forward call, which is the cache its backward uses.

    ``make()`` builds it (the class called without arguments, or a deep copy of the
    instance given); ``forward``/``backward``/``grad`` are method names; ``output`` and
    ``dx`` the attributes read when a method returns None ('' to search for one).
    """

    def __init__(
        self,
        make: Callable[[], object],
        forward: str,
        backward: str | None,
        backward_kind: str,
        grad_at: str,
        *,
        output: str = "",
        dx: str = "",
        grad_takes_arg: bool = True,
    ) -> None:
        self._make, self._fwd, self._bwd = make, forward, backward
        self.backward_kind, self.grad_at = backward_kind, grad_at
        self.output, self.dx, self._grad_takes_arg = output, dx, grad_takes_arg

    def forward(self, x: A) -> tuple[object, object]:
        layer = self._make()
        before = attribute_ids(layer)
        result = getattr(layer, self._fwd)(x)
        if isinstance(result, tuple) and len(result) == 2 and is_array(result[0]):
            result = result[0]  # (y, cache): the layer itself is the cache
        if result is None:
            name = self._read_name(layer, self.output, before, x.shape, OUTPUT_NAMES)
            if not name:
                raise ImplementationError(
                    "forward",
                    f".{self._fwd}(x) returned None and set no array attribute of shape "
                    f"{x.shape}; expected it to return y or store it (e.g. self.output)",
                )
            result = getattr(layer, name)
        return result, layer

    def backward(self, dout: A, x: A, y: A, layer: object) -> object:
        assert self._bwd is not None
        method = getattr(layer, self._bwd)
        if self.backward_kind == "at":
            return method(self._at(x, y)) if self._grad_takes_arg else method()
        before = attribute_ids(layer)
        result = dx_of(method(dout))
        if result is None:
            name = self._read_name(layer, self.dx, before, dout.shape, GRAD_NAMES)
            if not name:
                raise ImplementationError(
                    "backward",
                    f".{self._bwd}(dout) returned None and set no array attribute of shape "
                    f"{dout.shape}; expected it to return dx or store it (e.g. self.dinputs)",
                )
            result = getattr(layer, name)
        return result

    @staticmethod
    def _read_name(
        layer: object, preferred: str, before: dict[str, int], shape: tuple[int, ...],
        names: Sequence[str],
    ) -> str:  # fmt: skip
        value = getattr(layer, preferred, None) if preferred else None
        if _shaped(value, shape):
            return preferred
        return stored_name(layer, before, shape, names)


def fresh(target: object) -> Callable[[], object]:
    """A factory of fresh layers: the class called with no arguments, or a deep copy."""
    if isinstance(target, type):
        return target
    return lambda: copy.deepcopy(target)
