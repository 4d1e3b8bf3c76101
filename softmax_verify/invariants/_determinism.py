r"""Determinism: the same input, given twice, gives the same output and gradient.

Two calls of a correct implementation on the same x each lie within the error bound
of the exact softmax, so they differ from each other by at most twice that bound.
Deterministic code gives identical bits; code whose reductions run on several threads
may sum in a different order on each call, and the rounding may differ within the
bound. A result that changes by more than that between two calls depends on something
other than its input (a random draw, a counter, uninitialised memory), and no single
call can be trusted to be the one that was checked.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from softmax_verify.core.compare import assert_within
from softmax_verify.core.implementation import Implementation
from softmax_verify.core.options import Accumulation
from softmax_verify.core.oracle import log_softmax as exact_log
from softmax_verify.core.oracle import softmax as exact
from softmax_verify.invariants._cases import Case
from softmax_verify.tolerances import (
    backward_error_bound,
    forward_error_bound,
    log_softmax_backward_bound,
    log_softmax_error_bound,
)

__all__ = ["deterministic", "log_softmax_deterministic"]


def deterministic(impl: Implementation, case: Case, accumulate: Accumulation = "float32") -> None:
    r"""Two calls on the same input agree: :math:`|\hat y^{(1)}_i - \hat y^{(2)}_i| \le
    2(\eta_i y_i + \lambda)`, and likewise dx within twice the backward bound.

    Each call is within the derived bound of the exact value (tolerances.forward_error_bound,
    tolerances.backward_error_bound), so by the triangle inequality two correct calls are
    within twice it of each other: the most a change of summation order can move them.
    Entries NaN in both calls agree (a deterministic overflow is finite_for_finite_input's
    finding, not this one's).
    """
    x = case["x"]
    y_exact = exact(x)
    _twice(
        impl,
        case,
        2 * forward_error_bound(x, y_exact, x.dtype, accumulate=accumulate),
        lambda: 2 * backward_error_bound(x, y_exact, case["dout"], x.dtype, accumulate=accumulate),
    )


def log_softmax_deterministic(
    impl: Implementation, case: Case, accumulate: Accumulation = "float32"
) -> None:
    r"""log_softmax: two calls on the same input agree, :math:`|\hat z^{(1)}_i - \hat
    z^{(2)}_i| \le 2 a_i`, and dx within :math:`2\tau_i`.

    The same triangle inequality as for softmax, with the absolute log_softmax bounds
    (tolerances.log_softmax_error_bound :math:`a_i`, tolerances.log_softmax_backward_bound
    :math:`\tau_i`): each correct call is within them of the exact value.
    """
    x = case["x"]
    z_exact = exact_log(x)
    _twice(
        impl,
        case,
        2 * log_softmax_error_bound(x, z_exact, x.dtype, accumulate=accumulate),
        lambda: (
            2 * log_softmax_backward_bound(x, z_exact, case["dout"], x.dtype, accumulate=accumulate)
        ),
    )


def _twice(
    impl: Implementation,
    case: Case,
    forward_tolerance: NDArray[np.float64],
    backward_tolerance: Callable[[], NDArray[np.float64]],
) -> None:
    """Forward (and backward) twice on the case's x (and dout), compared within the given
    tolerances."""
    x, dout = case["x"], case["dout"]
    first, second = impl.forward(x), impl.forward(x)
    assert_within(
        second.y,
        first.y,
        forward_tolerance,
        invariant="deterministic",
        what="second forward(x) vs first forward(x)",
        message="forward(x) gave different results on two calls with the same x",
    )
    if impl.has_backward:
        dx_first = impl.backward(dout, first.cache).dx
        dx_second = impl.backward(dout, second.cache).dx
        assert_within(
            dx_second,
            dx_first,
            backward_tolerance(),
            invariant="deterministic",
            what="second backward vs first backward",
            message="backward(dout, cache) gave different results on two calls with the same "
            "x and dout",
        )
