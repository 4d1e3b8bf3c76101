"""The implementation under test as the verifier sees it: a protocol, its calls, their checks.

``Implementation`` is what every invariant, gradient check and diagnosis calls, and all
they depend on: the in-process implementation (``target.local.LocalImplementation``)
and the one in a child process (``isolation.remote.RemoteImplementation``) both
satisfy it. Its calls are in the canonical convention:

- ``forward(x)``: ``x`` an (N, D) array, each row a distribution (softmax along axis 1);
  the call returns ``y`` checked (type, shape, floating dtype) and copied, the cache
  for the backward, and whether the code wrote to its copy of ``x``;
- ``backward(dout, cache)``: ``dx`` checked and copied, the named intermediate
  gradients (``STAGE_NAMES``) when the code returns them, and whether it wrote to
  ``dout`` or the cache.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from softmax_verify.core.dtypes import is_float_dtype
from softmax_verify.core.errors import ImplementationError

__all__ = [
    "CACHE_NAMES",
    "STAGE_NAMES",
    "BackwardCall",
    "FloatArray",
    "ForwardCall",
    "Implementation",
    "Role",
    "checked_array",
    "lookup",
]

FloatArray = NDArray[np.floating[Any]]
#: Which of the code's two functions a call is for.
Role = Literal["forward", "backward"]

#: Forward-cache entries that stage localization reads.
CACHE_NAMES: tuple[str, ...] = ("exps", "sexps", "divexps")
#: Intermediate gradients of the notebook's staged backward, in the order it computes them
#: (``bundled.staged``): stage localization reads them by these names.
STAGE_NAMES: tuple[str, ...] = ("dexps_0", "ddivexps", "dsexps", "dexps_1", "dx")


@dataclass(frozen=True)
class ForwardCall:
    """One forward call: its output (a private copy), cache, and whether ``x`` was written to."""

    y: FloatArray
    cache: object
    mutated_input: bool


@dataclass(frozen=True)
class BackwardCall:
    """One backward call: ``dx`` (a private copy), the named stages if any, mutation flags."""

    dx: FloatArray
    stages: Mapping[str, FloatArray] = field(default_factory=dict)
    mutated_dout: bool = False
    mutated_cache: bool = False


def checked_array(
    role: str, what: str, value: object, shape: tuple[int, ...], *, copy: bool = True
) -> FloatArray:
    """``value`` if it is a floating numpy array of ``shape`` (a copy if ``copy``); else the
    ImplementationError of ``role`` saying what it returned instead."""
    if value is None:
        raise ImplementationError(role, f"returned None for {what}; expected a numpy array")
    if not isinstance(value, np.ndarray):
        raise ImplementationError(
            role, f"returned {type(value).__name__} for {what}; expected a numpy array"
        )
    if not is_float_dtype(value.dtype):
        raise ImplementationError(
            role, f"returned {what} of dtype {value.dtype}; expected a floating dtype"
        )
    if value.shape != shape:
        raise ImplementationError(
            role, f"returned {what} of shape {value.shape}; expected {shape} (the input's shape)"
        )
    return np.array(value, copy=True) if copy else value


def lookup(container: object, name: str) -> object:
    """``container[name]`` for a mapping, else ``getattr(container, name)``, else None."""
    if isinstance(container, Mapping):
        return container.get(name)
    return getattr(container, name, None)


@runtime_checkable
class Implementation(Protocol):
    """A forward (and optionally a backward) under test, called safely and uniformly.

    Every output is checked (``checked_array``) before any invariant looks at its numbers;
    a call that raises, overruns its time limit or returns the wrong type raises
    ``ImplementationError`` (``CallTimeout`` for an overrun).
    """

    #: The target's name, as reports show it.
    name: str
    #: Each call's time limit in seconds (None: none).
    timeout: float | None

    @property
    def has_backward(self) -> bool:
        """Whether a backward was given (backward invariants are skipped without one)."""
        ...

    def forward(self, x: FloatArray) -> ForwardCall:
        """Call the forward on a copy of ``x``; ``mutated_input``: whether it wrote to it."""
        ...

    def backward(self, dout: FloatArray, cache: object) -> BackwardCall:
        """Call the backward on a copy of ``dout`` with ``cache``; the flags say whether the
        code wrote to its copy of ``dout`` or to the cache."""
        ...

    def handed_over(
        self, role: Role, array: FloatArray, cache: object = None, *, watch_cache: bool = False
    ) -> ForwardCall | BackwardCall:
        """``forward(array)`` or ``backward(array, cache)`` for a caller that hands its own
        scratch array over and never reads it again: neither it nor the output is copied,
        and mutation of ``array`` is not looked for. ``watch_cache`` (backward): whether
        ``mutated_cache`` is to be judged."""
        ...

    def vjp(self, x: FloatArray, dout: FloatArray) -> FloatArray:
        """``backward(dout, cache).dx`` after a fresh ``forward(x)``: the implementation's VJP."""
        ...

    def forward_each(self, arrays: Sequence[FloatArray]) -> list[FloatArray]:
        """``forward(a).y`` for each of ``arrays``, in order, each a call of its own."""
        ...

    def source_of(self, name: str) -> str | None:
        """``file:line: text`` of the first assignment to stage ``name`` in the backward's
        source, or None when it cannot be found."""
        ...
