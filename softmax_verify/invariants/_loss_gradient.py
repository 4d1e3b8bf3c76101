r"""Cross-entropy invariants of the gradient :math:`dx = c((\sum_j q_j)p - q)`, and the gradient
halves of the loss invariants (``_loss_forward``).

:math:`c_i` is the upstream's weight of row i under the implementation's reduction (g/N,
g, :math:`g_i`), the upstream the case's where the code takes one, else 1 (ones).
Tolerances: ``tolerances.cross_entropy_backward_bound`` (:math:`\tau_{ij}`), from the
float64 reference.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from softmax_verify.core import cross_entropy as ce
from softmax_verify.core.compare import assert_within
from softmax_verify.core.errors import NotApplicable
from softmax_verify.core.loss_implementation import LossImplementation
from softmax_verify.core.options import Accumulation
from softmax_verify.core.oracle import softmax
from softmax_verify.invariants._cases import Case
from softmax_verify.invariants._forward import _two_sum_error
from softmax_verify.invariants._loss_common import gradient_bound, targets, upstream
from softmax_verify.tolerances import (
    LOG_SOFTMAX_SECOND,
    LOG_SOFTMAX_THIRD,
    combination_rounding,
    cross_entropy_alone_bound,
    cross_entropy_difference_step,
    cross_entropy_row_sum_bound,
    difference_truncation,
    gamma,
    reference_cross_entropy_backward_bound,
    softmax_perturbation,
)

__all__ = [
    "ENTRIES",
    "backward_matches_reference",
    "central_differences",
    "check_other_form_gradient",
    "check_permuted_gradient",
    "check_rows_permuted_gradient",
    "check_shifted_gradient",
    "check_twice_gradient",
    "entries",
    "gradient_rows_sum_to_zero",
    "linearity_in_upstream",
]

F64 = NDArray[np.float64]
#: The entries of a batch central differences checks (every one, up to this many: ``entries``).
ENTRIES = 64


def backward_matches_reference(
    impl: LossImplementation, case: Case, accumulate: Accumulation = "float32"
) -> None:
    r""":math:`\hat{dx}` within :math:`\tau` (plus the reference's own) of the float64
    :math:`c((\sum_j q_j)p - q)`: the gradient of the declared reduction, whatever the code
    returns its loss as. Catches dx N times too large (the 1/N of the mean forgotten), the
    one-hot never subtracted, a division by the class count."""
    x, labels = case["x"], case["labels"]
    q, g = targets(case), upstream(impl, case)
    weights = ce.weights(x.shape[0], impl.reduction, g)
    assert_within(
        impl.grad(x, labels, g).dx,
        ce.vjp(x, q, impl.reduction, g),
        reference_cross_entropy_backward_bound(x, q, weights, x.dtype, accumulate=accumulate),
        invariant="backward_matches_reference",
        what=f"dx vs the float64 gradient of the {impl.reduction} loss",
        message=f"dx is not the gradient of the {impl.reduction} cross-entropy within the "
        "derived bound",
    )


def gradient_rows_sum_to_zero(
    impl: LossImplementation, case: Case, accumulate: Accumulation = "float32"
) -> None:
    r""":math:`\sum_j \hat{dx}_{ij} = 0` within :math:`\sum_j\tau_{ij} + \gamma^{(64)}_C
    \sum_j|\hat{dx}_{ij}| + C\sigma`: :math:`c(S\sum_j p_j - S) = 0` for every target row
    (the loss is shift invariant). Catches the one-hot never subtracted (rows sum to c)."""
    x, labels = case["x"], case["labels"]
    q, g = targets(case), upstream(impl, case)
    dx = impl.grad(x, labels, g).dx.astype(np.float64)
    sums = dx.sum(axis=1)
    tolerance = cross_entropy_row_sum_bound(gradient_bound(impl, x, q, g, accumulate), dx)
    assert_within(
        sums,
        np.zeros_like(sums),
        tolerance,
        invariant="gradient_rows_sum_to_zero",
        what="row sums of dx",
        message="rows of dx do not sum to zero",
    )


def entries(x: NDArray[Any], q: F64) -> list[NDArray[np.intp]]:
    """The classes of each row whose entries are differenced: every entry when the batch
    has at most ``ENTRIES`` of them; else each row's target classes and maximum, then the
    rest of the budget spread evenly over the batch (fixed: a case always checks the same
    entries)."""
    n, c = x.shape
    if n * c <= ENTRIES:
        return [np.arange(c, dtype=np.intp) for _ in range(n)]
    spare = max(ENTRIES - 2 * n, 0)
    spread = np.linspace(0, n * c - 1, spare).astype(np.intp) if spare else np.zeros(0, np.intp)
    out = []
    for row in range(n):
        mine = spread[(spread // c) == row] % c
        must = [*np.flatnonzero(q[row])[:2], int(np.argmax(x[row]))]
        out.append(np.unique(np.concatenate([np.array(must, dtype=np.intp), mine])))
    return out


def _moved(x: NDArray[Any], cols: list[NDArray[np.intp]], steps: F64) -> tuple[
    list[NDArray[Any]], F64, F64
]:  # fmt: skip
    r"""Each row alone, moved by :math:`+h_i` and then :math:`-h_i` at each of its columns
    (one-row arrays, every ``+`` first), and the steps taken, :math:`h_\pm` (exact: each the
    difference of two nearby floats), flat over the entries."""
    plus: list[NDArray[Any]] = []
    minus: list[NDArray[Any]] = []
    ups, downs = [], []
    for row, chosen in enumerate(cols):
        base = x[row : row + 1]
        wide = base.astype(np.float64)[0, chosen]
        up, down = (wide + steps[row]).astype(x.dtype), (wide - steps[row]).astype(x.dtype)
        for values, into in ((up, plus), (down, minus)):
            for k, col in enumerate(chosen):
                one = base.copy()
                one[0, col] = values[k]
                into.append(one)
        ups.append(up.astype(np.float64) - wide)
        downs.append(wide - down.astype(np.float64))
    return plus + minus, np.concatenate(ups), np.concatenate(downs)


def _differences(
    impl: LossImplementation, case: Case, weights: F64, accumulate: Accumulation
) -> tuple[list[NDArray[np.intp]], F64, F64]:
    r"""(the columns of each row, the central differences :math:`c_i\Delta/(h_+ + h_-)` of
    every entry, flat, and their tolerance without :math:`\tau`)."""
    x, labels = case["x"], case["labels"]
    q = targets(case)
    ell, mass = ce.row_losses(x, q), q.sum(axis=1)
    at_x = cross_entropy_alone_bound(x, q, ell, x.dtype, accumulate=accumulate)
    steps = np.array([cross_entropy_difference_step(float(a), float(m), x.dtype)
                      for a, m in zip(at_x, mass, strict=True)])  # fmt: skip
    cols = entries(x, q)
    arrays, up, down = _moved(x, cols, steps)
    rows = np.concatenate([np.full(len(chosen), i) for i, chosen in enumerate(cols)])
    pairs = [(a, labels[r : r + 1].copy()) for a, r in zip(arrays, np.tile(rows, 2), strict=True)]
    values = np.array([float(np.asarray(v, np.float64).ravel()[0]) for v in impl.loss_each(pairs)])
    k = len(rows)
    with np.errstate(all="ignore"):
        delta, width = values[:k] - values[k:], up + down
        moved = cross_entropy_alone_bound(
            x, q, ell, x.dtype, moved=float(max(up.max(), down.max())), accumulate=accumulate
        )[rows]
        truncation = mass[rows] * difference_truncation(
            up, down, second=LOG_SOFTMAX_SECOND, third=LOG_SOFTMAX_THIRD
        )
        own = float(gamma(3, np.float64)) * np.abs(delta)
        c = weights[rows]
        tolerance = np.abs(c) * (truncation + (2 * moved + own) / width)
    return cols, c * delta / width, tolerance


def central_differences(
    impl: LossImplementation, case: Case, accumulate: Accumulation = "float32"
) -> None:
    r"""dx against central differences of the loss, entry by entry, each row alone.

    Row i alone (a batch of one, whose loss is :math:`\ell_i` under every reduction; the
    batch's own reduction is batch_consistency's) is moved by :math:`\pm h` at logit j;
    :math:`c_i(\hat\ell(x + h_+e_j) - \hat\ell(x - h_-e_j))/(h_+ + h_-)` is compared with
    :math:`\hat{dx}_{ij}` of the batch. Along :math:`x_{ij}`, :math:`\ell'' = Sp_j(1 - p_j)
    \le S/4` and :math:`|\ell'''| \le S/(6\sqrt 3)`: truncation :math:`S(\max h_\pm^2/(36
    \sqrt3) + |h_+ - h_-|/8)`; rounding: the one-row loss bound at both points (moved by
    h) over the width, and :math:`\gamma^{(64)}_3|\Delta|` of the estimate; times
    :math:`|c_i|`, plus :math:`\tau_{ij}`. h: ``cross_entropy_difference_step`` of the row,
    a power of two. Every entry of a batch of up to 64 entries (2 one-row calls each, in
    one round trip); of a larger one, 64 entries: every row's target classes and maximum,
    the rest spread evenly. Catches a gradient that is not the loss's: a scaled one, one
    whose loss mixes rows, a loss with a clipped log whose dx is the unclipped one.
    """
    x, labels = case["x"], case["labels"]
    q, g = targets(case), upstream(impl, case)
    weights = ce.weights(x.shape[0], impl.reduction, g)[:, 0]
    dx = impl.grad(x, labels, g).dx.astype(np.float64)
    tau = gradient_bound(impl, x, q, g, accumulate)
    cols, numerical, tolerance = _differences(impl, case, weights, accumulate)
    rows = np.concatenate([np.full(len(chosen), i) for i, chosen in enumerate(cols)])
    flat = np.concatenate(cols)
    assert_within(
        dx[rows, flat],
        numerical,
        tolerance + tau[rows, flat],
        invariant="central_differences",
        what="dx vs central differences of the loss of each row alone (flat over the entries)",
        message="dx disagrees with central differences of the loss",
    )


def linearity_in_upstream(
    impl: LossImplementation, case: Case, accumulate: Accumulation = "float32"
) -> None:
    r""":math:`B(a g + b g') = a B(g) + b B(g')` for a gradient that takes an upstream.

    a, b are powers of two, so :math:`w = \mathrm{fl}(a g + b g')` rounds only in the
    addition; its exact error :math:`\delta` (TwoSum) moves the exact gradient by
    :math:`|\delta|\,|dx(1)|` (a scalar upstream; row by row for a vector). Tolerance:
    :math:`\tau(w) + |a|\tau(g) + |b|\tau(g')` plus that, plus :math:`\gamma_2` of the
    check's float64 combination. A scalar upstream makes this homogeneity: it catches a
    backward that ignores or squares its upstream. Not applicable to a gradient without an
    upstream (``backward()``, a function's dx).
    """
    if not impl.takes_upstream:
        raise NotApplicable(
            f"the gradient takes no upstream: it is dx of the {impl.reduction} loss at 1"
        )
    x, labels, q = case["x"], case["labels"], targets(case)
    g, g2, a, b = case["g"], case["g2"], float(case["a"]), float(case["b"])
    wide = a * g.astype(np.float64), b * g2.astype(np.float64)
    with np.errstate(over="ignore"):
        w = (wide[0] + wide[1]).astype(x.dtype)
    delta = np.abs((w.astype(np.float64) - (wide[0] + wide[1])) - _two_sum_error(*wide))
    first = impl.grad(x, labels, g).dx.astype(np.float64)
    second = impl.grad(x, labels, g2).dx.astype(np.float64)
    unit = np.abs(ce.vjp(x, q, impl.reduction, np.ones_like(g, dtype=np.float64)))
    move = (delta[:, None] if delta.ndim else delta) * unit
    tolerance = (
        gradient_bound(impl, x, q, w, accumulate)
        + abs(a) * gradient_bound(impl, x, q, g, accumulate)
        + abs(b) * gradient_bound(impl, x, q, g2, accumulate)
        + move
        + combination_rounding(a * first, b * second)
    )
    assert_within(
        impl.grad(x, labels, w).dx,
        a * first + b * second,
        tolerance,
        invariant="linearity_in_upstream",
        what="B(a g + b g2) vs a B(g) + b B(g2)",
        message="the gradient is not linear in its upstream",
    )


def check_shifted_gradient(
    impl: LossImplementation,
    case: Case,
    moved: NDArray[Any],
    spread: F64,
    *,
    accumulate: Accumulation,
) -> None:
    r"""shift_invariance's gradient half: dx at :math:`\tilde x` against dx at x, within
    :math:`\tau(x) + \tau(\tilde x) + |c_i|S p_j(e^{2\|\delta_i\|_\infty} - 1)`."""
    x, labels, q, g = case["x"], case["labels"], targets(case), upstream(impl, case)
    weights = np.abs(ce.weights(x.shape[0], impl.reduction, g))
    mass = q.sum(axis=1, keepdims=True)
    perturbation = weights * mass * softmax_perturbation(softmax(x), spread[:, None])
    tolerance = (
        gradient_bound(impl, x, q, g, accumulate)
        + gradient_bound(impl, moved, q, g, accumulate)
        + perturbation
    )
    assert_within(
        impl.grad(moved, labels, g).dx,
        impl.grad(x, labels, g).dx,
        tolerance,
        invariant="shift_invariance",
        what="dx(x + shift) vs dx(x)",
        message="adding a constant to a row of logits changed dx",
    )


def check_permuted_gradient(
    impl: LossImplementation,
    case: Case,
    moved: NDArray[Any],
    relabelled: NDArray[Any],
    *,
    accumulate: Accumulation,
) -> None:
    """permutation_equivariance's gradient half: dx of the permuted classes is dx permuted,
    within twice :math:`\\tau` (permuted)."""
    x, labels, perm = case["x"], case["labels"], case["perm"]
    q, g = targets(case), upstream(impl, case)
    assert_within(
        impl.grad(moved, relabelled, g).dx,
        impl.grad(x, labels, g).dx[:, perm],
        2 * gradient_bound(impl, x, q, g, accumulate)[:, perm],
        invariant="permutation_equivariance",
        what="dx(x[:, perm]) vs dx(x)[:, perm]",
        message="permuting the classes (and relabelling) did not permute dx the same way",
    )


def check_rows_permuted_gradient(
    impl: LossImplementation, case: Case, *, accumulate: Accumulation
) -> None:
    """sample_permutation's gradient half: dx of the permuted rows (and their upstream
    weights, for a vector) is dx permuted, within twice :math:`\\tau`."""
    x, labels, rows = case["x"], case["labels"], case["rows"]
    q, g = targets(case), upstream(impl, case)
    g_rows = np.ascontiguousarray(g[rows]) if g.ndim else g
    assert_within(
        impl.grad(np.ascontiguousarray(x[rows]), np.ascontiguousarray(labels[rows]), g_rows).dx,
        impl.grad(x, labels, g).dx[rows],
        2 * gradient_bound(impl, x, q, g, accumulate)[rows],
        invariant="sample_permutation",
        what="dx(x[rows]) vs dx(x)[rows]",
        message="permuting the rows (with their labels) did not permute dx the same way",
    )


def check_twice_gradient(impl: LossImplementation, case: Case, *, accumulate: Accumulation) -> None:
    """deterministic's gradient half: two gradients of the same input within twice tau."""
    x, labels, q, g = case["x"], case["labels"], targets(case), upstream(impl, case)
    first = impl.grad(x, labels, g).dx
    assert_within(
        impl.grad(x, labels, g).dx,
        first,
        2 * gradient_bound(impl, x, q, g, accumulate),
        invariant="deterministic",
        what="second dx vs first dx",
        message="dx gave different results on two calls with the same x and labels",
    )


def check_other_form_gradient(
    impl: LossImplementation, case: Case, other: NDArray[Any], *, accumulate: Accumulation
) -> None:
    """onehot_index_agree's gradient half: dx with the other label form, within twice tau."""
    x, labels, q, g = case["x"], case["labels"], targets(case), upstream(impl, case)
    assert_within(
        impl.grad(x, other, g).dx,
        impl.grad(x, labels, g).dx,
        2 * gradient_bound(impl, x, q, g, accumulate),
        invariant="onehot_index_agree",
        what="dx with the other label form vs dx",
        message="one-hot rows and class indices of the same labels give different dx",
    )
