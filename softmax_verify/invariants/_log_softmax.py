r"""Invariants of ``z = log_softmax(x)`` and its backward :math:`B(g) = g - y \sum_j g_j`.

:math:`z_i = x_i - \log\sum_j e^{x_j}`, :math:`y = e^z` the softmax. Its Jacobian is
:math:`J = I - \mathbf 1 y^\top`, so the VJP is :math:`J^\top g = g - y \sum_j g_j`:
rank one away from the identity, and not symmetric (so the softmax-only checks
``jacobian_symmetry``, ``jacobian_psd`` and ``ones_upstream_gives_zero`` do not hold).
Tolerances are absolute (tolerances.log_softmax_error_bound, :math:`a_i`, and
tolerances.log_softmax_backward_bound, :math:`\tau_i`), sized from the float64 reference.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from softmax_verify.core.compare import assert_within
from softmax_verify.core.implementation import Implementation
from softmax_verify.core.options import Accumulation
from softmax_verify.core.oracle import f64 as _f64
from softmax_verify.core.oracle import log_softmax as exact
from softmax_verify.invariants._cases import Case
from softmax_verify.invariants._forward import (
    check_finite,
    check_permuted,
    check_rows_alone,
    check_shifted,
)
from softmax_verify.tolerances import (
    log_probability_slack,
    log_softmax_error_bound,
    log_softmax_perturbation,
    logsumexp_bound,
    reference_log_softmax_bound,
)

__all__ = [
    "entries_nonpositive",
    "finite_for_finite_input",
    "matches_reference",
    "permutation_equivariance",
    "row_independence",
    "rows_logsumexp_zero",
    "shift_invariance",
]

F64 = NDArray[np.float64]


def _bound(x: NDArray[Any], accumulate: Accumulation) -> F64:
    """The forward's per-entry absolute error bound a on ``x`` (log_softmax_error_bound)."""
    return log_softmax_error_bound(x, exact(x), x.dtype, accumulate=accumulate)


def finite_for_finite_input(
    impl: Implementation, case: Case, accumulate: Accumulation = "float32"
) -> None:
    r"""Finite x with :math:`|x| \le` max/2 gives finite z; likewise dx for finite dout.

    Then :math:`z_i \ge -2 \cdot \max/2 - \ln D` is finite in the dtype. ``log(softmax(x))``
    gives -inf where a probability underflows; a forward without the max shift
    overflows. Exact: no tolerance.
    """
    check_finite(impl, case)


def rows_logsumexp_zero(
    impl: Implementation, case: Case, accumulate: Accumulation = "float32"
) -> None:
    r""":math:`\log\sum_i e^{\hat z_i} = 0` per row: the outputs are log-probabilities.

    With :math:`\hat z_i = z_i + e_i`, :math:`|e_i| \le a_i`:
    :math:`\log\sum_i y_i e^{e_i}` lies within :math:`b = \sum_i y_i (e^{a_i} - 1)` above
    and :math:`b / (1 - b)` below 0. Tolerance: :math:`b/(1-b)` plus
    :math:`\gamma_{D+4}` for the float64 logsumexp taken here.
    """
    x = case["x"]
    z_hat = _f64(impl.forward(x).y)
    z = exact(x)
    with np.errstate(all="ignore"):
        top = np.max(z_hat, axis=1, keepdims=True)
        lse = top[:, 0] + np.log(np.exp(z_hat - top).sum(axis=1))
    tol = logsumexp_bound(x, z, x.dtype, accumulate=accumulate)
    assert_within(
        lse,
        np.zeros_like(lse),
        tol,
        invariant="rows_logsumexp_zero",
        what="logsumexp of each row of forward(x)",
        message="rows of forward(x) are not log-probabilities: logsumexp is not 0",
    )


def entries_nonpositive(
    impl: Implementation, case: Case, accumulate: Accumulation = "float32"
) -> None:
    r""":math:`\hat z_i \le \gamma_{D + 10 + 5\ln D} + D\lambda`: log-probabilities are <= 0.

    Exactly :math:`z_i = (x_i - m) - \log s \le 0` since :math:`s \ge 1`. The slack is the
    error allowed in :math:`\log \hat s` (tolerances.log_softmax_error_bound at
    :math:`t_i = z_i = 0`). NaN counts as a violation.
    """
    x = case["x"]
    z_hat = _f64(impl.forward(x).y)
    slack = log_probability_slack(x.shape[1], x.dtype, accumulate=accumulate)
    nearest = np.where(np.isnan(z_hat), 1.0, np.minimum(z_hat, 0.0))
    assert_within(
        z_hat,
        nearest,
        np.where(z_hat > 0, slack, 0.0),
        invariant="entries_nonpositive",
        what="forward(x) against <= 0",
        message=f"forward(x) has entries above {slack:.3g}: not log-probabilities",
    )


def shift_invariance(
    impl: Implementation, case: Case, accumulate: Accumulation = "float32"
) -> None:
    r""":math:`z(x + c) = z(x)` for a per-row constant c.

    The shifted input rounds to :math:`\tilde x = x + c + \delta` (:math:`\delta` exact by
    TwoSum); :math:`dz = \delta - \mathbf 1 \langle y, \delta\rangle` moves each entry by at
    most :math:`2\|\delta\|_\infty`. Tolerance: :math:`a(x) + a(\tilde x)` plus that.
    """
    check_shifted(
        impl,
        case,
        lambda x, shifted, spread, model: (
            _bound(x, model) + _bound(shifted, model) + log_softmax_perturbation(spread)
        ),
        "log_softmax",
        accumulate=accumulate,
    )


def permutation_equivariance(
    impl: Implementation, case: Case, accumulate: Accumulation = "float32"
) -> None:
    r""":math:`z(x P) = z(x) P` for a permutation P of the columns. Tolerance: :math:`2a`."""
    check_permuted(impl, case, _bound, "log_softmax", accumulate=accumulate)


def row_independence(
    impl: Implementation, case: Case, accumulate: Accumulation = "float32"
) -> None:
    r"""Row r of :math:`z(x)` equals z of row r alone. Tolerance: :math:`2a`."""
    check_rows_alone(impl, case, _bound, "log_softmax", accumulate=accumulate)


def matches_reference(
    impl: Implementation, case: Case, accumulate: Accumulation = "float32"
) -> None:
    r""":math:`|\hat z_i - z_i| \le a_i` (plus the reference's own) against float64.

    Absolute: covers the large negative outputs, where a relative bound would say
    nothing useful and ``log(softmax(x))`` underflows to -inf.
    """
    x = case["x"]
    z = exact(x)
    assert_within(
        impl.forward(x).y,
        z,
        reference_log_softmax_bound(x, z, x.dtype, accumulate=accumulate),
        invariant="matches_reference",
        what="forward(x) vs float64 reference log_softmax",
        message="forward(x) differs from the reference log_softmax beyond the derived bound",
    )
