"""The child's side of each request (see ``main`` for the protocol): calls of the
Implementation (or, for the ``cross_entropy`` kind, the LossImplementation) the target
names, with their results as builtins and encoded arrays."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from softmax_verify.core.errors import CallTimeout, ImplementationError
from softmax_verify.core.implementation import BackwardCall, ForwardCall, Implementation, lookup
from softmax_verify.core.loss_implementation import LossImplementation
from softmax_verify.core.messages import describe_exception, one_line
from softmax_verify.isolation.wire import decode_array, encode_array
from softmax_verify.target.conventions import Reading
from softmax_verify.target.load import TargetError, TargetSpec, load_target, with_outputs_read
from softmax_verify.target.sandbox import user_location

__all__ = ["Server"]

Reply = tuple[Any, ...]
Encoded = tuple[str, str, tuple[int, ...], bytes]


class Server:
    """The loaded target and the caches of its forward calls, by handle."""

    def __init__(self) -> None:
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
        except BaseException as exc:  # the user's code, outside a call (a cache's __getattr__)
            return ("error", role, "raised " + describe_exception(exc), _where(exc))

    def _load(self, spec: TargetSpec, path: tuple[str, ...] = ()) -> Reply:
        # The verifier's import path too (a script may have added to it), after this
        # process's own entries, which come from the same environment.
        sys.path.extend(p for p in path if p not in sys.path)
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
        x = _decoded(encoded)
        call = self._loaded().handed_over("forward", x)  # x is this process's own copy
        assert isinstance(call, ForwardCall)
        handle = self.next_handle
        self.next_handle += 1
        self.caches[handle] = call.cache
        return ("ok", encode_array(call.y), handle, encode_array(x) if want_x else None)

    def _backward(
        self,
        encoded: Encoded,
        handle: int | None,
        cache: object,
        want_dout: bool,
        watch_cache: bool,
    ) -> Reply:
        dout = _decoded(encoded)
        if handle is not None:
            cache = self.caches[handle]
        call = self._loaded().handed_over("backward", dout, cache, watch_cache=watch_cache)
        assert isinstance(call, BackwardCall)
        stages = {name: encode_array(value) for name, value in call.stages.items()}
        after = encode_array(dout) if want_dout else None
        return ("ok", encode_array(call.dx), stages, after, bool(call.mutated_cache))

    def _forward_each(self, encoded: list[Encoded]) -> Reply:
        impl = self._loaded()
        ys = []
        for one in encoded:
            call = impl.handed_over("forward", _decoded(one))  # its cache is not kept
            assert isinstance(call, ForwardCall)
            ys.append(encode_array(call.y))
        return ("ok", ys)

    def _vjp(self, x: Encoded, dout: Encoded) -> Reply:
        return ("ok", encode_array(self._loaded().vjp(_decoded(x), _decoded(dout))))

    def _cache(self, handle: int, name: str) -> Reply:
        value = lookup(self.caches[handle], name)
        if not isinstance(value, np.ndarray) or value.dtype.hasobject:
            return ("ok", None)
        return ("ok", encode_array(value))

    def _reading(self) -> Reply:
        if self.reading is None:
            raise RuntimeError("no target loaded")
        return ("ok", with_outputs_read(self.reading, self.impl).to_dict())

    def _source(self, stage: str) -> Reply:
        found = self._loaded().source_of(stage)
        return ("ok", None if found is None else one_line(found))

    def _loss(self, x: Encoded, labels: Encoded) -> Reply:
        call = self._loaded_loss().loss(_decoded(x), _decoded(labels))
        return ("ok", encode_array(call.loss), call.mutated_x, call.mutated_labels)

    def _grad(self, x: Encoded, labels: Encoded, upstream: Encoded) -> Reply:
        call = self._loaded_loss().grad(_decoded(x), _decoded(labels), _decoded(upstream))
        flags = (call.mutated_x, call.mutated_labels, call.mutated_upstream, call.mutated_cache)
        return ("ok", encode_array(call.dx), *(bool(flag) for flag in flags))

    def _loss_each(self, pairs: list[tuple[Encoded, Encoded]]) -> Reply:
        impl = self._loaded_loss()
        return (
            "ok",
            [encode_array(impl.loss(_decoded(x), _decoded(lab)).loss) for x, lab in pairs],
        )


def _decoded(encoded: Encoded) -> np.ndarray[Any, Any]:
    """An array from the verifier, in writable memory of this process's own."""
    return decode_array(encoded)


def _where(exc: BaseException) -> str | None:
    return user_location(exc.__traceback__)
