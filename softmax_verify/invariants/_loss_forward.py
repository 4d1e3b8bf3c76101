r"""Cross-entropy invariants of the loss: properties of ``loss(x, labels)``.

Each check takes the ``LossImplementation``, one case (``_loss_cases``) and the
half-precision model, and raises ``InvariantViolation`` when the property fails. The
exact values come from ``core.cross_entropy``, the tolerances from
``tolerances._cross_entropy`` (:math:`A_i` per row; a reduced loss's bound), both from the
float64 reference, never from the values under test. A loss returned one per row is
compared row by row under any reduction (``compared``); a scalar under ``reduction``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

from softmax_verify.core import cross_entropy as ce
from softmax_verify.core.compare import assert_within
from softmax_verify.core.errors import ImplementationError, InvariantViolation, NotApplicable
from softmax_verify.core.loss_implementation import LossImplementation
from softmax_verify.core.options import Accumulation
from softmax_verify.invariants._cases import Case
from softmax_verify.invariants._forward import _first_bad
from softmax_verify.invariants._loss_common import (
    compared,
    finite_reduction,
    loss_bound,
    relabelled,
    shifted,
    targets,
    upstream,
)
from softmax_verify.invariants._loss_gradient import (
    check_other_form_gradient,
    check_permuted_gradient,
    check_rows_permuted_gradient,
    check_shifted_gradient,
    check_twice_gradient,
)
from softmax_verify.strategies import one_hot
from softmax_verify.tolerances import (
    cross_entropy_batch_bound,
    cross_entropy_nonnegative_slack,
    cross_entropy_shift_perturbation,
    reference_cross_entropy_loss_bound,
)

__all__ = [
    "batch_consistency",
    "deterministic_loss",
    "dtype_preserved",
    "finite_for_finite_input",
    "input_not_mutated",
    "loss_nonnegative",
    "matches_reference",
    "onehot_index_agree",
    "permutation_equivariance",
    "sample_permutation",
    "shift_invariance",
]

F64 = NDArray[np.float64]


def finite_for_finite_input(
    impl: LossImplementation, case: Case, accumulate: Accumulation = "float32"
) -> None:
    r"""Finite logits with :math:`|x| \le` max/2 give a finite loss, and a finite dx.

    Then every exact row loss :math:`t_y + L \le \max + \ln C` is finite in the dtype (at
    :math:`|x| = \max` a gap is :math:`2\max` and the exact loss itself overflows). A mean or
    sum is required finite where the exact rows sum to at most max/4 (a correct
    ``np.mean(rows)`` overflows on the way otherwise). dx = c(p - q) is finite for every
    finite x. ``-log(softmax(x))`` gives inf once a probability underflows; an unshifted
    ``exp`` overflows. Exact: no tolerance.
    """
    x, labels = case["x"], case["labels"]
    loss = impl.loss(x, labels).loss
    bad = ~np.isfinite(loss)
    if bad.any() and finite_reduction(x, targets(case), compared(loss, impl.reduction)):
        shown = _first_bad(bad, loss) if loss.ndim else f"{loss!r}"
        raise InvariantViolation("finite_for_finite_input", "the loss is not finite: " + shown)
    if impl.has_backward:
        dx = impl.grad(x, labels, upstream(impl, case)).dx
        bad = ~np.isfinite(dx)
        if bad.any():
            raise InvariantViolation(
                "finite_for_finite_input", "dx is not finite for finite x: " + _first_bad(bad, dx)
            )


def loss_nonnegative(
    impl: LossImplementation, case: Case, accumulate: Accumulation = "float32"
) -> None:
    r""":math:`\hat\ell \ge -`slack: :math:`\ell = -\sum_j q_j\log p_j \ge 0` for every
    :math:`q \ge 0` (index, one-hot and probability labels alike).

    Slack: the loss bound at :math:`\ell = 0` (``cross_entropy_nonnegative_slack``): a
    correct ``-log`` of a probability rounded to :math:`1 + 2u` gives :math:`-2u`. A loss
    with its sign flipped (the log-likelihood) fails at once. NaN counts as a violation.
    """
    x, labels = case["x"], case["labels"]
    loss = impl.loss(x, labels).loss.astype(np.float64)
    red = compared(loss, impl.reduction)
    slack = cross_entropy_nonnegative_slack(x, targets(case), x.dtype, red, accumulate=accumulate)
    nearest = np.where(np.isnan(loss), -1.0, np.maximum(loss, 0.0))
    assert_within(
        loss,
        nearest,
        np.where(loss < 0, slack, 0.0),
        invariant="loss_nonnegative",
        what="loss against >= 0",
        message="the loss is negative: a cross-entropy is at least 0",
    )


def matches_reference(
    impl: LossImplementation, case: Case, accumulate: Accumulation = "float32"
) -> None:
    r""":math:`|\hat{\mathcal L} - \mathcal L|` within its bound (plus the reference's own)
    against the float64 reference :math:`\sum_{q_j \ne 0} q_j(t_j + L)`, reduced.

    Absolute: a confidently wrong row's loss is large and its error grows with it, and a
    ``log`` of an underflowed probability is an infinite absolute error. The only loss
    check that catches a self-consistent mistake (a clipped or epsilon-guarded log, a
    temperature) whose gradient agrees with it.
    """
    x, labels = case["x"], case["labels"]
    q = targets(case)
    loss = impl.loss(x, labels).loss
    red = compared(loss, impl.reduction)
    ell = ce.row_losses(x, q)
    assert_within(
        loss,
        ce.reduce(ell, red),
        reference_cross_entropy_loss_bound(x, q, ell, x.dtype, red, accumulate=accumulate),
        invariant="matches_reference",
        what=f"loss (reduction {red}) vs float64 reference",
        message="the loss differs from the reference cross-entropy beyond the derived bound",
    )


def dtype_preserved(
    impl: LossImplementation, case: Case, accumulate: Accumulation = "float32"
) -> None:
    """The loss and dx in x's dtype (a Python float, from ``.item()``, counts as float64).
    Exact."""
    x, labels = case["x"], case["labels"]
    loss = impl.loss(x, labels).loss
    if loss.dtype != x.dtype:
        raise InvariantViolation(
            "dtype_preserved", f"the loss is {loss.dtype} for logits of dtype {x.dtype}"
        )
    if impl.has_backward:
        dx = impl.grad(x, labels, upstream(impl, case)).dx
        if dx.dtype != x.dtype:
            raise InvariantViolation(
                "dtype_preserved", f"dx is {dx.dtype} for logits of dtype {x.dtype}"
            )


def input_not_mutated(
    impl: LossImplementation, case: Case, accumulate: Accumulation = "float32"
) -> None:
    """The loss and its gradient leave x, the labels, the upstream and the forward's
    arrays (the cache: a layer's stored probabilities) as they were. Exact."""
    x, labels = case["x"], case["labels"]
    call = impl.loss(x, labels)
    for flag, what in ((call.mutated_x, "x"), (call.mutated_labels, "the labels")):
        if flag:
            raise InvariantViolation("input_not_mutated", f"the loss wrote to its input {what}")
    if impl.has_backward:
        back = impl.grad(x, labels, upstream(impl, case))
        for flag, what in (
            (back.mutated_x, "x"),
            (back.mutated_labels, "the labels"),
            (back.mutated_upstream, "the upstream"),
            (back.mutated_cache, "what its forward stored (the cache)"),
        ):
            if flag:
                raise InvariantViolation("input_not_mutated", f"the gradient wrote to {what}")


def shift_invariance(
    impl: LossImplementation, case: Case, accumulate: Accumulation = "float32"
) -> None:
    r""":math:`\ell(x + c) = \ell(x)` and :math:`dx(x + c) = dx(x)` for a per-row constant c.

    The check's own rounding :math:`\delta` of :math:`x + c` (TwoSum) moves the exact loss
    by at most :math:`2S\|\delta\|_\infty` (mean value theorem:
    :math:`|\langle Sp(\xi) - q, \delta\rangle|`) and the exact dx by
    :math:`|c_i|S p_j(e^{2\|\delta\|_\infty} - 1)`. Tolerance: the bounds at x and at
    :math:`\tilde x` (whose :math:`u|m + c|` term grows with the shift: the price of the
    logsumexp-first formula) plus those.
    """
    x, labels = case["x"], case["labels"]
    q = targets(case)
    moved, spread = shifted(x, case["shift"])
    before = impl.loss(x, labels).loss
    red = compared(before, impl.reduction)
    tolerance = loss_bound(x, q, red, accumulate) + loss_bound(moved, q, red, accumulate)
    tolerance = tolerance + cross_entropy_shift_perturbation(spread, q.sum(axis=1), red)
    assert_within(
        impl.loss(moved, labels).loss,
        before,
        tolerance,
        invariant="shift_invariance",
        what="loss(x + shift) vs loss(x)",
        message="adding a constant to a row of logits changed the loss",
    )
    if impl.has_backward:
        check_shifted_gradient(impl, case, moved, spread, accumulate=accumulate)


def permutation_equivariance(
    impl: LossImplementation, case: Case, accumulate: Accumulation = "float32"
) -> None:
    r"""Permuting the classes and relabelling: the loss is unchanged, dx permuted the same way.

    Both calls are within the bound of the same exact values (the bounds do not depend on
    the order of the classes), so twice it.
    """
    x, labels, perm = case["x"], case["labels"], case["perm"]
    q = targets(case)
    moved, other = np.ascontiguousarray(x[:, perm]), relabelled(labels, perm)
    before = impl.loss(x, labels).loss
    assert_within(
        impl.loss(moved, other).loss,
        before,
        2 * loss_bound(x, q, compared(before, impl.reduction), accumulate),
        invariant="permutation_equivariance",
        what="loss(x[:, perm], labels relabelled) vs loss(x, labels)",
        message="permuting the classes (and relabelling) changed the loss",
    )
    if impl.has_backward:
        check_permuted_gradient(impl, case, moved, other, accumulate=accumulate)


def sample_permutation(
    impl: LossImplementation, case: Case, accumulate: Accumulation = "float32"
) -> None:
    r"""Permuting the rows and their labels: a reduced loss is unchanged (a per-row loss
    permuted), dx permuted the same way. Tolerance: twice the bounds."""
    x, labels, rows = case["x"], case["labels"], case["rows"]
    q = targets(case)
    before = impl.loss(x, labels).loss
    red = compared(before, impl.reduction)
    bound = loss_bound(x, q, red, accumulate)
    expected, tolerance = (before[rows], bound[rows]) if red == "none" else (before, bound)
    assert_within(
        impl.loss(np.ascontiguousarray(x[rows]), np.ascontiguousarray(labels[rows])).loss,
        expected,
        2 * tolerance,
        invariant="sample_permutation",
        what="loss(x[rows], labels[rows]) vs loss(x, labels)",
        message="permuting the rows (with their labels) changed the loss",
    )
    if impl.has_backward:
        check_rows_permuted_gradient(impl, case, accumulate=accumulate)


def batch_consistency(
    impl: LossImplementation, case: Case, accumulate: Accumulation = "float32"
) -> None:
    r"""The loss of the batch is the mean (or sum) of each row's loss computed alone.

    Each row alone is a batch of one, whose mean and sum are its loss; the check reduces
    the N values (``math.fsum``). Catches a loss that mixes the rows (``x[:, y]`` instead of
    ``x[range(N), y]``: every row at every label) or divides by the wrong count.
    Tolerance: ``cross_entropy_batch_bound``. Where the exact rows sum beyond max/4 a
    reduced loss may be inf correctly: not compared.
    """
    x, labels = case["x"], case["labels"]
    q = targets(case)
    n = x.shape[0]
    loss = impl.loss(x, labels).loss
    red = compared(loss, impl.reduction)
    pairs = [(x[i : i + 1].copy(), labels[i : i + 1].copy()) for i in range(n)]
    alone = np.array([float(np.asarray(v, np.float64).ravel()[0]) for v in impl.loss_each(pairs)])
    if not finite_reduction(x, q, red):
        return
    ell = ce.row_losses(x, q)
    bound = cross_entropy_batch_bound(x, q, ell, x.dtype, red, alone, accumulate=accumulate)
    if red == "none":
        expected: NDArray[Any] = alone
    else:
        with np.errstate(all="ignore"):
            expected = np.asarray(math.fsum(alone.tolist()) / (n if red == "mean" else 1))
    assert_within(
        loss,
        expected,
        bound,
        invariant="batch_consistency",
        what=f"loss of the batch vs the {red} of each row's loss alone",
        message="the loss of the batch is not the reduction of its rows' losses",
    )


def deterministic_loss(
    impl: LossImplementation, case: Case, accumulate: Accumulation = "float32"
) -> None:
    r"""The same input twice gives the same loss and dx, within twice their bounds (each call
    is within its bound of the same exact value; threads summing in another order may move
    a correct result that much, not more)."""
    x, labels = case["x"], case["labels"]
    first = impl.loss(x, labels).loss
    assert_within(
        impl.loss(x, labels).loss,
        first,
        2 * loss_bound(x, targets(case), compared(first, impl.reduction), accumulate),
        invariant="deterministic",
        what="second loss(x, labels) vs first",
        message="the loss gave different results on two calls with the same x and labels",
    )
    if impl.has_backward:
        check_twice_gradient(impl, case, accumulate=accumulate)


def onehot_index_agree(
    impl: LossImplementation, case: Case, accumulate: Accumulation = "float32"
) -> None:
    r"""Index labels and their one-hot rows give the same loss and dx, where the code takes
    both: a target read for index labels is given one-hot rows in x's dtype, one read for
    one-hot rows their indices. A target that raises on the other form does not take it:
    not applicable (skipped, with its error). Tolerance: twice the bounds (both forms have
    the same q, hence the same exact values).
    """
    x, labels = case["x"], case["labels"]
    if impl.labels == "probs":
        raise NotApplicable("the labels are probability rows: no index form to compare with")
    other = (
        one_hot(labels, x.shape[1], x.dtype)
        if labels.ndim == 1
        else labels.argmax(axis=1).astype(np.int64)
    )
    before = impl.loss(x, labels).loss
    try:
        after = impl.loss(x, other).loss
    except ImplementationError as exc:
        form = "one-hot rows" if labels.ndim == 1 else "class indices"
        raise NotApplicable(f"the target does not take {form}: {exc}") from None
    assert_within(
        after,
        before,
        2 * loss_bound(x, targets(case), compared(before, impl.reduction), accumulate),
        invariant="onehot_index_agree",
        what="loss with the other label form vs loss",
        message="one-hot rows and class indices of the same labels give different losses",
    )
    if impl.has_backward:
        check_other_form_gradient(impl, case, other, accumulate=accumulate)
