"""Calls that hand the gradient checks' scratch arrays to the code under test.

At the sizes the checks are meant for (4096 x 4096 and up) every copy and every fresh
array costs about as much as a pass over it. The arrays the checks pass (perturbed
points, upstream directions, stacks of copies) are their own, built for one call and
not read again, and the checks read each output before the next call; so neither is
copied, and mutation of the input is not looked for (the invariants look for it).
Both go through ``Implementation.handed_over``, in this process or in the child.
"""

from __future__ import annotations

from softmax_verify.core.implementation import BackwardCall, FloatArray, ForwardCall, Implementation

__all__ = ["scratch_backward", "scratch_forward"]


def scratch_forward(impl: Implementation, x: FloatArray) -> ForwardCall:
    """``forward(x)``, with ``x`` handed over and ``y`` not copied."""
    call = impl.handed_over("forward", x)
    assert isinstance(call, ForwardCall)  # handed_over's contract for role "forward"
    return call


def scratch_backward(
    impl: Implementation, dout: FloatArray, cache: object, *, watch_cache: bool
) -> BackwardCall:
    """``backward(dout, cache)``, with ``dout`` handed over and ``dx`` not copied.

    ``watch_cache``: the caller uses the cache again, so ``mutated_cache`` reports whether
    the backward wrote to it (a backward that consumes its cache needs a fresh one).
    """
    call = impl.handed_over("backward", dout, cache, watch_cache=watch_cache)
    assert isinstance(call, BackwardCall)  # handed_over's contract for role "backward"
    return call
