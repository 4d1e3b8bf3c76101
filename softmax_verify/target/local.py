"""The implementation under test in this process, called through the canonical convention.

``softmax_verify.target.conventions`` reads layer classes, elementwise and Jacobian
derivatives, 1-D code and other layouts into this convention:

- ``forward(x)`` returns ``y`` or a tuple ``(y, cache)`` (cs231n style). ``x`` is
  an (N, D) array and each row is a distribution (softmax along axis 1).
- ``backward(dout, cache)``: ``cache`` is the forward's second element, or ``y``
  itself when the forward returned only ``y``. It returns ``dx``, a mapping with
  key ``"dx"`` (like a dict of named intermediate gradients), or an object with
  attribute ``dx``.

Every call goes through the sandbox: the code receives copies (so it cannot
corrupt the verifier's data, and mutation of its inputs is recorded rather than
felt), runs under a time limit, and what it returns is checked for type and
shape before any invariant looks at the numbers.
"""

from __future__ import annotations

import inspect
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from softmax_verify.core.errors import ImplementationError
from softmax_verify.core.implementation import (
    STAGE_NAMES,
    BackwardCall,
    FloatArray,
    ForwardCall,
    Implementation,
    Role,
    checked_array,
    lookup,
)
from softmax_verify.target.arrays import ArrayLog, is_array
from softmax_verify.target.mutation import same_bits, snapshot, unchanged
from softmax_verify.target.sandbox import call_limited

__all__ = ["LocalImplementation"]


class LocalImplementation(Implementation):
    """A forward (and optionally a backward) in this process, each call through the sandbox."""

    def __init__(
        self,
        forward: Callable[..., Any],
        backward: Callable[..., Any] | None = None,
        *,
        timeout: float | None = 10.0,
        name: str | None = None,
        arrays: ArrayLog | None = None,
    ) -> None:
        if not callable(forward):
            raise TypeError(f"forward must be callable, got {type(forward).__name__}")
        if backward is not None and not callable(backward):
            raise TypeError(f"backward must be callable or None, got {type(backward).__name__}")
        if timeout is not None and not (isinstance(timeout, (int, float)) and timeout > 0):
            raise ValueError(
                f"timeout must be a positive number of seconds or None, got {timeout!r}"
            )
        self._forward = forward
        self._backward = backward
        self.timeout = None if timeout is None else float(timeout)
        self.name: str = name or str(getattr(forward, "__qualname__", repr(forward)))
        #: Reads the outputs that are other libraries' arrays (``target.arrays``); the
        #: conventions' reader shares it when it reads the code.
        self.arrays = arrays if arrays is not None else ArrayLog()

    @property
    def has_backward(self) -> bool:
        return self._backward is not None

    def forward(self, x: FloatArray) -> ForwardCall:
        """Call the forward on a copy of ``x``; y is checked and copied, and ``mutated_input``
        says whether the code wrote to its copy of x."""
        given = np.array(x, copy=True)
        call = self._forward_call(given, copy=True)
        return replace(call, mutated_input=not same_bits(given, x))

    def backward(self, dout: FloatArray, cache: object) -> BackwardCall:
        """Call the backward on a copy of ``dout`` with ``cache``; dx (and the named stages)
        are checked and copied, and the flags say whether the code wrote to its copy of dout
        or to the cache."""
        given = np.array(dout, copy=True)
        call = self._backward_call(given, cache, copy=True, watch_cache=True)
        return replace(call, mutated_dout=not same_bits(given, dout))

    def handed_over(
        self, role: Role, array: FloatArray, cache: object = None, *, watch_cache: bool = False
    ) -> ForwardCall | BackwardCall:
        """``forward(array)`` or ``backward(array, cache)`` for a caller that hands its own
        scratch array over: the gradient checks (``softmax_verify.gradcheck._scratch``, at
        sizes where every copy costs a pass) and the child process (``_serve``, on arrays it
        decoded).

        ``array`` is passed as is and never read again by the caller, and the caller reads
        the output before its next call; so neither is copied, and mutation of ``array`` is
        not looked for (its flag is False). Checks of the output's type, shape and dtype
        kind still apply. ``watch_cache`` (backward): the caller uses ``cache`` again, so
        ``mutated_cache`` says whether the backward wrote to it.
        """
        if role == "forward":
            return self._forward_call(array, copy=False)
        return self._backward_call(array, cache, copy=False, watch_cache=watch_cache)

    def _forward_call(self, given: FloatArray, *, copy: bool) -> ForwardCall:
        result = call_limited("forward", self._forward, given, timeout=self.timeout)
        if isinstance(result, tuple) and len(result) == 2 and not hasattr(result, "_fields"):
            y_raw, cache = result
        else:
            y_raw, cache = result, None
        y_read = self.arrays.numpy("forward", "y", y_raw)  # another library's array: a copy
        y = checked_array("forward", "y", y_read, given.shape, copy=copy and y_read is y_raw)
        if cache is None:
            cache = y_raw  # the convention: backward(dout, y) when the forward returned only y
        return ForwardCall(y=y, cache=cache, mutated_input=False)

    def _backward_call(
        self, given: FloatArray, cache: object, *, copy: bool, watch_cache: bool
    ) -> BackwardCall:
        if self._backward is None:
            raise ImplementationError("backward", "was not given")
        cache_before = snapshot(cache) if watch_cache else []
        result = call_limited("backward", self._backward, given, cache, timeout=self.timeout)
        stages: dict[str, FloatArray] = {}
        if is_array(result):
            dx_raw: object = result
        elif isinstance(result, Mapping) or hasattr(result, "dx"):
            dx_raw = lookup(result, "dx")
            if dx_raw is None:
                raise ImplementationError(
                    "backward", "returned a mapping without key 'dx'; expected dx or {'dx': ...}"
                )
            for stage in STAGE_NAMES:
                value = lookup(result, stage)
                read = self.arrays.numpy("backward", stage, value)
                if isinstance(read, np.ndarray):
                    stages[stage] = read.copy() if copy and read is value else read
        else:
            dx_raw = result
        dx_read = self.arrays.numpy("backward", "dx", dx_raw)
        dx = checked_array("backward", "dx", dx_read, given.shape, copy=copy and dx_read is dx_raw)
        return BackwardCall(
            dx=dx, stages=stages, mutated_cache=watch_cache and not unchanged(cache_before)
        )

    def source_of(self, name: str) -> str | None:
        """``file:line`` of the first assignment to stage ``name`` in the backward's source.

        Matches ``name = ...`` and ``...["name"] = ...``; None when the source is not
        available (a builtin, a lambda defined in a REPL) or names no such stage.
        """
        if self._backward is None:
            return None
        func = inspect.unwrap(self._backward)
        try:
            lines, first = inspect.getsourcelines(func)
            path = inspect.getsourcefile(func)
        except (OSError, TypeError):
            return None
        pattern = re.compile(rf"""(\b{name}\b|\[["']{name}["']\])\s*(\+|-|\*|/)?=(?!=)""")
        if path is not None and path.startswith(os.getcwd() + os.sep):
            path = os.path.relpath(path)  # as the user typed it, when under the working dir
        for offset, line in enumerate(lines):
            if pattern.search(line.split("#", 1)[0]):
                return f"{path}:{first + offset}: {line.strip()}"
        return None

    def vjp(self, x: FloatArray, dout: FloatArray) -> FloatArray:
        """``backward(dout, cache)`` after a fresh ``forward(x)``: the implementation's VJP."""
        return self.backward(dout, self.forward(x).cache).dx

    def forward_each(self, arrays: Sequence[FloatArray]) -> list[FloatArray]:
        """``forward(a).y`` for each of ``arrays``, in order: a call of its own for each (the
        child process makes them all in one round trip)."""
        return [self.forward(a).y for a in arrays]
