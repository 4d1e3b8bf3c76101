r"""``gradient_rows_sum_to_zero``: every row of :math:`B(g)` sums to zero, for any g.

Softmax and log_softmax are both invariant to a common shift of a row's logits:
:math:`f(x + c\mathbf 1) = f(x)`, so :math:`J\mathbf 1 = 0` and
:math:`\mathbf 1^\top J^\top g = (J\mathbf 1)^\top g = 0`. For softmax,
:math:`\sum_i y_i(g_i - \langle g, y\rangle) = \langle g, y\rangle(1 - \sum_i y_i)`; for
log_softmax, :math:`\sum_i (g_i - y_i S) = S(1 - \sum_i y_i)`.

Tolerance per row: :math:`\sum_i \tau_i` (each entry within its backward bound of the
exact value, whose sum is 0) plus tolerances.dot_rounding for the float64 sum taken here.
"""

from __future__ import annotations

from typing import Any

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
    dot_rounding,
    log_softmax_backward_bound,
)

__all__ = ["log_softmax_gradient_rows_sum_to_zero", "softmax_gradient_rows_sum_to_zero"]


def _check(dx: NDArray[Any], entry_bound: NDArray[np.float64]) -> None:
    dx_wide = dx.astype(np.float64)
    sums = dx_wide.sum(axis=1)
    tol = entry_bound.sum(axis=1) + dot_rounding(dx.shape[1], np.abs(dx_wide).sum(axis=1))
    assert_within(
        sums,
        np.zeros_like(sums),
        tol,
        invariant="gradient_rows_sum_to_zero",
        what="row sums of backward(dout)",
        message="rows of the gradient do not sum to zero: the backward is not shift invariant",
    )


def softmax_gradient_rows_sum_to_zero(
    impl: Implementation, case: Case, accumulate: Accumulation = "float32"
) -> None:
    r""":math:`\sum_i B(g)_i = 0` per row, for any g (softmax: J 1 = 0).

    Tolerance: :math:`\sum_i \tau_i` (tolerances.backward_error_bound) plus the float64 sum.
    """
    x, dout = case["x"], case["dout"]
    _check(
        impl.vjp(x, dout), backward_error_bound(x, exact(x), dout, x.dtype, accumulate=accumulate)
    )


def log_softmax_gradient_rows_sum_to_zero(
    impl: Implementation, case: Case, accumulate: Accumulation = "float32"
) -> None:
    r""":math:`\sum_i B(g)_i = S(1 - \sum_i y_i) = 0` per row, for any g (log_softmax).

    Tolerance: :math:`\sum_i \tau_i` (tolerances.log_softmax_backward_bound) plus the
    float64 sum.
    """
    x, dout = case["x"], case["dout"]
    dx = impl.vjp(x, dout)
    _check(dx, log_softmax_backward_bound(x, exact_log(x), dout, x.dtype, accumulate=accumulate))
