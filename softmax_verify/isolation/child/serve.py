"""The child's side of each request (see ``main`` for the protocol): calls of the
Implementation (or, for the ``cross_entropy`` kind, the LossImplementation) the target
names, with their results as builtins and arrays encoded by the ``Transport`` bound
before the target was imported."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from softmax_verify.core.dtypes import named_dtype
from softmax_verify.core.errors import CallTimeout, ImplementationError
from softmax_verify.core.implementation import BackwardCall, ForwardCall, Implementation, lookup
from softmax_verify.core.loss_implementation import LossImplementation
from softmax_verify.core.messages import describe_exception, one_line
from softmax_verify.isolation.child.transport import Encoded, Transport
from softmax_verify.target.conventions import Reading
from softmax_verify.target.load import TargetError, TargetSpec, load_target, with_outputs_read
from softmax_verify.target.sandbox import user_location

__all__ = ["Server"]

Reply = tuple[Any, ...]


class Server:
    """The loaded target and the caches of its forward calls, by handle; arrays go both
    ways through ``transport``."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        self.encode = transport.encode
        self.decode = transport.decode
        self.impl: Implementation | LossImplementation | None = None
        self.reading: Reading | None = None
        self.caches: dict[int, object] = {}
        self.next_handle = 0

    def handle(self, request: tuple[Any, ...]) -> Reply:
        """The reply to ``request``; whatever the code under test raises becomes an error."""
        op, release, args = request[0], request[1], request[2:]
        for handle in release:
            self.caches.pop(handle, None)
        role = "backward" if op in ("backward", "vjp", "grad") else "forward"
        try:
            if op == "load":
                return self._load(*args)
            action: Callable[..., Reply] = getattr(self, "_" + op)
            return action(*args)
        except CallTimeout as exc:
            return ("timeout", exc.role, exc.seconds)
        except ImplementationError as exc:
            return ("error", exc.role, one_line(exc.reason), exc.location)
        except MemoryError as exc:  # the child's own arrays, outside a call: not the code's
            return ("memory", describe_exception(exc))
        except BaseException as exc:  # the user's code, outside a call (a cache's __getattr__)
            return ("error", role, "raised " + describe_exception(exc), _where(exc))

    def _load(self, spec: TargetSpec, path: tuple[str, ...] = ()) -> Reply:
        # The verifier's import path too (a script may have added to it), after this
        # process's own entries, which come from the same environment.
        sys.path.extend(p for p in path if p not in sys.path)
        try:
            self.transport.expect(named_dtype(name, "dtypes") for name in spec.options.dtypes)
        except TypeError as exc:  # bfloat16 without ml_dtypes: the verifier says so first
            return ("target_error", one_line(str(exc)))
        try:
            self.impl, reading = load_target(spec)
        except TargetError as exc:
            cause = exc.__context__  # the loader reports a sys.exit() at import as a TargetError
            if isinstance(cause, SystemExit):
                return ("exited", one_line(repr(cause.code)), _where(cause))
            return ("target_error", one_line(str(exc)))
        self.reading = reading
        # The options as the child read them, echoed: the verifier can see they arrived.
        echoed = dataclasses.asdict(spec.options)
        upstream = isinstance(self.impl, LossImplementation) and self.impl.takes_upstream
        return (
            "loaded",
            self.impl.has_backward,
            one_line(self.impl.name),
            reading.to_dict(),
            echoed,
            upstream,
        )

    def _loaded(self) -> Implementation:
        if not isinstance(self.impl, Implementation):
            raise RuntimeError("no softmax target loaded")
        return self.impl

    def _loaded_loss(self) -> LossImplementation:
        if not isinstance(self.impl, LossImplementation):
            raise RuntimeError("no cross-entropy target loaded")
        return self.impl

    def _forward(self, encoded: Encoded, want_x: bool) -> Reply:
        x = self.decode(encoded)
        call = self._loaded().handed_over("forward", x)  # x is this process's own copy
        assert isinstance(call, ForwardCall)
        handle = self.next_handle
        self.next_handle += 1
        self.caches[handle] = call.cache
        return ("ok", self.encode(call.y), handle, self.encode(x) if want_x else None)

    def _backward(
        self,
        encoded: Encoded,
        handle: int | None,
        cache: object,
        want_dout: bool,
        watch_cache: bool,
    ) -> Reply:
        dout = self.decode(encoded)
        if handle is not None:
            cache = self.caches[handle]
        call = self._loaded().handed_over("backward", dout, cache, watch_cache=watch_cache)
        assert isinstance(call, BackwardCall)
        stages = {name: self.encode(value) for name, value in call.stages.items()}
        after = self.encode(dout) if want_dout else None
        return ("ok", self.encode(call.dx), stages, after, bool(call.mutated_cache))

    def _forward_each(self, encoded: list[Encoded]) -> Reply:
        impl = self._loaded()
        ys = []
        for one in encoded:
            call = impl.handed_over("forward", self.decode(one))  # its cache is not kept
            assert isinstance(call, ForwardCall)
            ys.append(self.encode(call.y))
        return ("ok", ys)

    def _vjp(self, x: Encoded, dout: Encoded) -> Reply:
        return ("ok", self.encode(self._loaded().vjp(self.decode(x), self.decode(dout))))

    def _cache(self, handle: int, name: str) -> Reply:
        value = lookup(self.caches[handle], name)
        if not isinstance(value, np.ndarray) or value.dtype.hasobject:
            return ("ok", None)
        return ("ok", self.encode(value))

    def _reading(self) -> Reply:
        if self.reading is None:
            raise RuntimeError("no target loaded")
        return ("ok", with_outputs_read(self.reading, self.impl).to_dict())

    def _source(self, stage: str) -> Reply:
        found = self._loaded().source_of(stage)
        return ("ok", None if found is None else one_line(found))

    def _loss(self, x: Encoded, labels: Encoded) -> Reply:
        call = self._loaded_loss().loss(self.decode(x), self.decode(labels))
        return ("ok", self.encode(call.loss), call.mutated_x, call.mutated_labels)

    def _grad(self, x: Encoded, labels: Encoded, upstream: Encoded) -> Reply:
        call = self._loaded_loss().grad(self.decode(x), self.decode(labels), self.decode(upstream))
        flags = (call.mutated_x, call.mutated_labels, call.mutated_upstream, call.mutated_cache)
        return ("ok", self.encode(call.dx), *(bool(flag) for flag in flags))

    def _loss_each(self, pairs: list[tuple[Encoded, Encoded]]) -> Reply:
        # The implementation's own loss_each: one time limit for the batch and no mutation
        # checks of the copies, as in process (a central difference makes ~100 calls).
        decoded = [(self.decode(x), self.decode(lab)) for x, lab in pairs]
        return ("ok", [self.encode(loss) for loss in self._loaded_loss().loss_each(decoded)])


def _where(exc: BaseException) -> str | None:
    return user_location(exc.__traceback__)
