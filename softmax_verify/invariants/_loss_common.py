"""What the cross-entropy checks share: the targets and upstream of a case, how a returned
loss is compared, the loss bound of a case, and the inputs a check forms itself."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from softmax_verify.core import cross_entropy as ce
from softmax_verify.core.dtypes import finfo
from softmax_verify.core.loss_implementation import LossImplementation, unit_upstream
from softmax_verify.core.options import Accumulation, Reduction
from softmax_verify.invariants._cases import Case
from softmax_verify.invariants._forward import _two_sum_error
from softmax_verify.tolerances import cross_entropy_backward_bound, cross_entropy_loss_bound

__all__ = [
    "compared",
    "finite_reduction",
    "gradient_bound",
    "loss_bound",
    "relabelled",
    "shifted",
    "targets",
    "upstream",
]

F64 = NDArray[np.float64]


def targets(case: Case) -> F64:
    """The case's target rows q (N, C) in float64."""
    return ce.targets(case["labels"], case["x"].shape[1])


def upstream(impl: LossImplementation, case: Case, name: str = "g") -> NDArray[Any]:
    """The upstream the gradient is taken at: the case's where the code takes one, else the
    1 (or ones) its gradient is for."""
    if impl.takes_upstream:
        return case[name]
    x = case["x"]
    return unit_upstream(x.shape[0], impl.reduction, x.dtype)


def compared(loss: NDArray[Any], reduction: Reduction) -> Reduction:
    """How a returned loss is compared: row by row when it has one value per row."""
    return "none" if loss.ndim == 1 else reduction


def loss_bound(x: NDArray[Any], q: F64, reduction: Reduction, accumulate: Accumulation) -> F64:
    """``cross_entropy_loss_bound`` at x's dtype for the exact rows of (x, q)."""
    ell = ce.row_losses(x, q)
    return cross_entropy_loss_bound(x, q, ell, x.dtype, reduction, accumulate=accumulate)


def finite_reduction(x: NDArray[Any], q: F64, reduction: Reduction) -> bool:
    """Whether a reduced loss must be finite: the exact rows sum to at most max/4, so every
    partial sum of correct computed rows stays below max."""
    if reduction == "none":
        return True
    with np.errstate(all="ignore"):
        total = float(ce.row_losses(x, q).astype(np.float64).sum())
    return total <= float(finfo(x.dtype).max) / 4


def shifted(x: NDArray[Any], shift: NDArray[Any]) -> tuple[NDArray[Any], F64]:
    r""":math:`\tilde x = \mathrm{fl}(x + c)` and per row :math:`\|\delta\|_\infty` (N,), the
    rounding :math:`\delta = \tilde x - (x + c)` recovered exactly by TwoSum."""
    with np.errstate(over="ignore"):
        moved = (x.astype(np.float64) + shift).astype(x.dtype)
    wide = [a.astype(np.float64) for a in (x, np.broadcast_to(shift, x.shape), moved)]
    delta = (wide[2] - (wide[0] + wide[1])) - _two_sum_error(wide[0], wide[1])
    return moved, np.abs(delta).max(axis=1)


def relabelled(labels: NDArray[Any], perm: NDArray[Any]) -> NDArray[Any]:
    """The labels of ``x[:, perm]``: class ``perm[j]`` moves to column j."""
    out: NDArray[Any] = (
        np.argsort(perm)[labels].astype(labels.dtype)
        if labels.ndim == 1
        else np.ascontiguousarray(labels[:, perm])
    )
    return out


def gradient_bound(
    impl: LossImplementation,
    x: NDArray[Any],
    q: F64,
    g: NDArray[Any],
    accumulate: Accumulation,
    *,
    moved: float = 0.0,
) -> F64:
    """``cross_entropy_backward_bound`` at x's dtype for the upstream ``g`` the gradient was
    taken at (its weights under the implementation's reduction)."""
    weights = ce.weights(x.shape[0], impl.reduction, g)
    return cross_entropy_backward_bound(x, q, weights, x.dtype, moved=moved, accumulate=accumulate)
