r"""Invariants on rows with masked (``-inf``) entries, checked with ``masked=True``.

Softmax of a row with masked entries M and unmasked entries U: :math:`e^{-\infty} = 0`,
so :math:`y_i = 0` for :math:`i \in M` and :math:`y_U = \operatorname{softmax}(x_U)`;
:math:`\partial y / \partial x_i = 0` for :math:`i \in M`, so :math:`dx_i = y_i(g_i -
\langle g, y\rangle) = 0` there and :math:`dx_U` is the softmax VJP of the subset.

A *fully masked* row (every entry ``-inf``) has no distribution. The documented
semantics: its output is every entry 0 (attention kernels that skip such rows) or every
entry NaN (``torch.softmax``: 0/0), one or the other across the whole row; its gradient
entries are each 0 or NaN, never a finite nonzero value; and it must not change any
other row (checked by ``masked_rows_match_subset`` on batches that contain such rows).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from softmax_verify._compare import assert_within
from softmax_verify._oracle import softmax, softmax_vjp
from softmax_verify.errors import InvariantViolation
from softmax_verify.implementation import Implementation
from softmax_verify.invariants._cases import Case
from softmax_verify.tolerances import reference_backward_bound, reference_forward_bound

__all__ = ["fully_masked_rows", "masked_entries_exactly_zero", "masked_rows_match_subset"]


def _partial_rows(x: NDArray[Any]) -> NDArray[np.intp]:
    """Rows with at least one unmasked entry."""
    return np.flatnonzero(np.isfinite(x).any(axis=1))


def masked_entries_exactly_zero(impl: Implementation, case: Case) -> None:
    r"""A masked entry (``-inf``) of a row with an unmasked one gets exactly 0 probability
    and exactly 0 gradient: :math:`e^{-\infty} = 0` and :math:`dx_i = y_i(\dots) = 0`.

    Exact, no tolerance: a mask emulated by a large negative number (-1e4, the dtype's
    min) leaks probability wherever the unmasked logits are not far above it.
    """
    x, dout = case["x"], case["dout"]
    rows = _partial_rows(x)
    masked = np.isneginf(x[rows])
    call = impl.forward(x)
    y = call.y[rows]
    assert_within(
        np.where(masked, y, 0.0),
        np.zeros(y.shape),
        0.0,
        invariant="masked_entries_exactly_zero",
        what="forward(x) at masked entries",
        message="a masked (-inf) entry got nonzero probability",
    )
    if impl.has_backward:
        dx = impl.backward(dout, call.cache).dx[rows]
        assert_within(
            np.where(masked, dx, 0.0),
            np.zeros(dx.shape),
            0.0,
            invariant="masked_entries_exactly_zero",
            what="backward(dout) at masked entries",
            message="a masked (-inf) entry got a nonzero gradient",
        )


def masked_rows_match_subset(impl: Implementation, case: Case) -> None:
    r"""The unmasked entries U of each row equal :math:`\operatorname{softmax}(x_U)`, and
    their gradient the softmax VJP of that subset, :math:`y_U(g_U - \langle g_U, y_U\rangle)`.

    Tolerances: the reference forward and backward bounds for a row of length
    :math:`|U|` (the masked entries contribute exact zeros to every sum).
    """
    x, dout = case["x"], case["dout"]
    call = impl.forward(x)
    dx = impl.backward(dout, call.cache).dx if impl.has_backward else None
    for r in _partial_rows(x):
        keep = np.isfinite(x[r])
        sub = x[r : r + 1, keep]
        y_ref = softmax(sub)
        assert_within(
            call.y[r : r + 1, keep],
            y_ref,
            reference_forward_bound(sub, y_ref, x.dtype),
            invariant="masked_rows_match_subset",
            what=f"forward(x)[{r}] at unmasked entries vs softmax of those entries",
            message=f"row {r}: the unmasked entries are not the softmax of the unmasked logits",
        )
        if dx is not None:
            g = dout[r : r + 1, keep]
            assert_within(
                dx[r : r + 1, keep],
                softmax_vjp(g, y_ref),
                reference_backward_bound(sub, y_ref, g, x.dtype),
                invariant="masked_rows_match_subset",
                what=f"backward(dout)[{r}] at unmasked entries vs the subset's VJP",
                message=f"row {r}: the gradient of the unmasked entries is not the subset's VJP",
            )


def fully_masked_rows(impl: Implementation, case: Case) -> None:
    """A fully masked row's output is all 0 or all NaN; each gradient entry is 0 or NaN.

    (The semantics documented above; exact.)
    """
    x, dout = case["x"], case["dout"]
    full = np.flatnonzero(np.isneginf(x).all(axis=1))
    if full.size == 0:
        return
    call = impl.forward(x)
    for r in full:
        row = call.y[r]
        if not (np.all(row == 0) or np.all(np.isnan(row))):
            raise InvariantViolation(
                "fully_masked_rows",
                f"row {r} is fully masked; its output must be all 0 or all NaN, got {row!r}",
            )
    if impl.has_backward:
        dx = impl.backward(dout, call.cache).dx[full]
        finite_nonzero = np.isfinite(dx) & (dx != 0)
        if finite_nonzero.any():
            raise InvariantViolation(
                "fully_masked_rows",
                "a fully masked row got a finite nonzero gradient: "
                f"{int(finite_nonzero.sum())} entries, e.g. {dx[finite_nonzero][0]!r}",
            )
