"""The softmax implementation under test, running in a child process, behind the usual interface.

``RemoteImplementation`` has the interface of ``Implementation`` (``forward``,
``backward``, ``vjp``, ``has_backward``, ``source_of``, ``name``), so the invariants and
gradient checks run unchanged in the verifier's process while the target's module, its
global state and its caches live in the child (``_child``); the child's lifetime and
the requests are ``channel.ChildTarget``'s. A forward's cache stays there behind a
handle (``RemoteCache``); ``implementation.lookup(cache, "exps")`` fetches a named cache
array. Mutation of ``x`` and ``dout`` is judged here, on the arrays the child hands back
after the call.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from numpy.typing import NDArray

from softmax_verify.core.errors import ImplementationError
from softmax_verify.core.implementation import (
    BackwardCall,
    FloatArray,
    ForwardCall,
    Implementation,
    Role,
    checked_array,
)
from softmax_verify.isolation.channel import (
    GRACE,
    LOAD_SECONDS,
    RETRY_GRACE,
    ChildTarget,
    LoadFailed,
    ProcessLost,
    array_reply,
    crash_location,
    text_reply,
)
from softmax_verify.isolation.wire import encode_array, same_array

__all__ = [
    "GRACE",
    "LOAD_SECONDS",
    "RETRY_GRACE",
    "LoadFailed",
    "ProcessLost",
    "RemoteCache",
    "RemoteImplementation",
    "crash_location",
]


class RemoteCache:
    """A forward's cache, kept in the child; attribute access fetches a named array.

    ``implementation.lookup(cache, name)`` reads it like a cache object of the user's:
    the named array, or None when the cache has no such array.
    """

    def __init__(self, owner: RemoteImplementation, generation: int, handle: int) -> None:
        self._owner, self._generation, self._handle = owner, generation, handle

    def __del__(self) -> None:
        # The child may drop it: the handle goes with the next request (no I/O here).
        self._owner._released.append((self._generation, self._handle))

    def __getattr__(self, name: str) -> NDArray[Any]:
        if name.startswith("_"):
            raise AttributeError(name)
        found = self._owner._cache_array(self, name)
        if found is None:
            raise AttributeError(name)
        return found

    def __repr__(self) -> str:
        return f"<cache {self._handle} of {self._owner.name} in its child process>"


class RemoteImplementation(ChildTarget, Implementation):
    """The softmax target ``spec`` names, loaded and called in a child process (see the
    module docstring)."""

    # -- the Implementation interface --

    def forward(self, x: FloatArray) -> ForwardCall:
        """``forward(x)`` in the child: y checked here; ``mutated_input`` judged here."""
        return self._forward_request(x, handed_over=False)

    def backward(self, dout: FloatArray, cache: object) -> BackwardCall:
        """``backward(dout, cache)`` in the child; ``mutated_dout`` judged here."""
        return self._backward_request(dout, cache, handed_over=False, watch_cache=True)

    def handed_over(
        self, role: Role, array: FloatArray, cache: object = None, *, watch_cache: bool = False
    ) -> ForwardCall | BackwardCall:
        """As ``Implementation.handed_over``: the array does not come back to be compared
        (the child's copy is its own), and the child watches the cache only if asked."""
        if role == "forward":
            return self._forward_request(array, handed_over=True)
        return self._backward_request(array, cache, handed_over=True, watch_cache=watch_cache)

    def _forward_request(self, x: FloatArray, *, handed_over: bool) -> ForwardCall:
        reply = self._request("forward", ("forward", encode_array(x), not handed_over), x.nbytes)
        y = checked_array("forward", "y", array_reply("forward", reply[1]), x.shape, copy=False)
        handle = reply[2]
        if type(handle) is not int:
            self.kill()
            raise ImplementationError("forward", "corrupted the verifier's channel")
        cache = RemoteCache(self, self._generation, handle)
        mutated = False if handed_over else not same_array(reply[3], x)
        return ForwardCall(y=y, cache=cache, mutated_input=mutated)

    def _backward_request(
        self, dout: FloatArray, cache: object, *, handed_over: bool, watch_cache: bool
    ) -> BackwardCall:
        if not self._has_backward:
            raise ImplementationError("backward", "was not given")
        handle, sent = None, cache
        if isinstance(cache, RemoteCache):
            if cache._owner is not self or cache._generation != self._generation:
                raise ImplementationError("backward", "got a cache from a process that has ended")
            handle, sent = cache._handle, None
        message = ("backward", encode_array(dout), handle, sent, not handed_over, watch_cache)
        reply = self._request("backward", message, dout.nbytes)
        dx = checked_array(
            "backward", "dx", array_reply("backward", reply[1]), dout.shape, copy=False
        )
        stages = reply[2] if isinstance(reply[2], dict) else {}
        return BackwardCall(
            dx=dx,
            stages={str(k): array_reply("backward", v) for k, v in stages.items()},
            mutated_dout=False if handed_over else not same_array(reply[3], dout),
            mutated_cache=reply[4] is True,
        )

    def vjp(self, x: FloatArray, dout: FloatArray) -> FloatArray:
        """``backward(dout, cache)`` after a fresh ``forward(x)``, in one round trip."""
        if not self._has_backward:
            raise ImplementationError("backward", "was not given")
        message = ("vjp", encode_array(x), encode_array(dout))
        reply = self._request("backward", message, 2 * x.nbytes)
        return checked_array(
            "backward", "dx", array_reply("backward", reply[1]), dout.shape, copy=False
        )

    def forward_each(self, arrays: Sequence[FloatArray]) -> list[FloatArray]:
        """``forward(a).y`` for each of ``arrays``, every call in the child, in one round trip;
        the first call that fails ends it, with that call's error."""
        message = ("forward_each", [encode_array(a) for a in arrays])
        nbytes = sum(a.nbytes for a in arrays)
        reply = self._request("forward", message, nbytes, calls=max(len(arrays), 1))
        ys = reply[1]
        if not isinstance(ys, list) or len(ys) != len(arrays):
            self.kill()
            raise ImplementationError("forward", "corrupted the verifier's channel")
        return [
            checked_array("forward", "y", array_reply("forward", y), a.shape, copy=False)
            for y, a in zip(ys, arrays, strict=True)
        ]

    def _cache_array(self, cache: RemoteCache, name: str) -> NDArray[Any] | None:
        if cache._generation != self._generation:
            return None
        reply = self._request("forward", ("cache", cache._handle, name), 0)
        return None if reply[1] is None else array_reply("forward", reply[1])

    def source_of(self, name: str) -> str | None:
        if not self._has_backward:
            return None
        try:
            reply = self._request("backward", ("source", name), 0)
        except ImplementationError:
            return None
        return text_reply(reply[1])
