"""Calls that hand the gradient checks' scratch arrays to the code under test.

At the sizes the checks are meant for (4096 x 4096 and up) every copy and every fresh
array costs about as much as a pass over it. The arrays the checks pass (perturbed
points, upstream directions, stacks of copies) are their own, built for one call and
not read again, and the checks read each output before the next call; so neither is
copied, and mutation of the input is not looked for (the invariants look for it).
"""

from __future__ import annotations

from typing import Any

from numpy.typing import NDArray

from softmax_verify.implementation import BackwardCall, FloatArray, ForwardCall, Implementation

__all__ = ["scratch_backward", "scratch_forward"]


def scratch_forward(impl: Implementation, x: FloatArray) -> ForwardCall:
    """``forward(x)``, with ``x`` handed over and ``y`` not copied."""
    return impl.forward(x, scratch=True)


def scratch_backward(
    impl: Implementation,
    dout: FloatArray,
    cache: object,
    *,
    watch_cache: bool,
    snapshot_into: NDArray[Any] | None = None,
) -> BackwardCall:
    """``backward(dout, cache)``, with ``dout`` handed over and ``dx`` not copied.

    ``watch_cache``: report whether the backward wrote to the cache (``mutated_cache``),
    for a caller that uses the cache again. ``snapshot_into``: a C-contiguous array of the
    caller's, free during the call, to hold the cache's snapshot if it fits.
    """
    return impl.backward(
        dout, cache, scratch=True, watch_cache=watch_cache, snapshot_into=snapshot_into
    )
