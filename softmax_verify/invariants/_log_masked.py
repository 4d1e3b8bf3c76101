r"""Masked rows (``masked=True``) for log_softmax: ``z = x - \log\sum_j e^{x_j}``.

A row with masked entries M (``-inf``) and unmasked entries U: the sum runs over U only
(:math:`e^{-\infty} = 0`), so :math:`z_U = \operatorname{log\_softmax}(x_U)` and
:math:`z_i = -\infty - \log\sum_U e^{x_j} = -\infty` exactly for :math:`i \in M`.

The VJP is :math:`dx = g - y \sum_j g_j` with :math:`y = e^z`, :math:`y_M = 0`. An
upstream at a ``-inf`` output has no meaning (any loss that reads a ``-inf``
log-probability is infinite), and what a code does with it is a convention: the
derivative of the formula gives :math:`dx_i = g_i` there and sums :math:`g` over the
whole row (``torch.log_softmax``), a mask taken as a constant gives :math:`dx_i = 0` and
sums over U. Both are right, so these checks draw ``dout = 0`` at masked entries
(``_cases.masked_log_case``), where the two agree: :math:`dx_M = 0` exactly and
:math:`dx_U = g_U - y_U \sum_U g_j`, the log_softmax VJP of the subset.

A *fully masked* row has no distribution. The documented semantics, the logarithm of
the softmax's: its output is every entry ``-inf`` (the log of an all-zero row, as
kernels that skip such rows give) or every entry NaN (``torch.log_softmax``: -inf minus
-inf); its gradient entries are each 0 or NaN, never a finite nonzero value.
"""

from __future__ import annotations

import numpy as np

from softmax_verify._compare import assert_within
from softmax_verify._oracle import log_softmax, log_softmax_vjp
from softmax_verify.errors import InvariantViolation
from softmax_verify.implementation import Implementation
from softmax_verify.invariants._cases import Case
from softmax_verify.invariants._masked import _partial_rows
from softmax_verify.tolerances import (
    reference_log_softmax_backward_bound,
    reference_log_softmax_bound,
)

__all__ = ["fully_masked_rows", "masked_entries_exactly_zero", "masked_rows_match_subset"]

_ID_ENTRIES = "masked_entries_exactly_zero"
_ID_SUBSET = "masked_rows_match_subset"


def masked_entries_exactly_zero(impl: Implementation, case: Case) -> None:
    r"""A masked entry (``-inf``) of a row with an unmasked one gets exactly ``-inf``
    (log-probability of probability 0) and, for a zero upstream there, exactly 0 gradient:
    :math:`z_i = -\infty - \log s` and :math:`dx_i = g_i - 0 \cdot \sum_j g_j = 0`.

    Exact, no tolerance: a mask emulated by a large negative number (-1e4, the dtype's
    min) gives a finite log-probability, and a backward that replaces ``-inf`` by a
    finite value moves gradient onto the masked entries.
    """
    x, dout = case["x"], case["dout"]
    rows = _partial_rows(x)
    masked = np.isneginf(x[rows])
    call = impl.forward(x)
    z = call.y[rows]
    assert_within(
        np.where(masked, z, -np.inf),
        np.full(z.shape, -np.inf),
        0.0,
        invariant=_ID_ENTRIES,
        what="forward(x) at masked entries",
        message="a masked (-inf) entry did not get log-probability -inf",
    )
    if impl.has_backward:
        dx = impl.backward(dout, call.cache).dx[rows]
        assert_within(
            np.where(masked, dx, 0.0),
            np.zeros(dx.shape),
            0.0,
            invariant=_ID_ENTRIES,
            what="backward(dout) at masked entries (dout 0 there)",
            message="a masked (-inf) entry got a nonzero gradient",
        )


def masked_rows_match_subset(impl: Implementation, case: Case) -> None:
    r"""The unmasked entries U of each row equal :math:`\operatorname{log\_softmax}(x_U)`,
    and their gradient the log_softmax VJP of that subset, :math:`g_U - y_U \sum_U g_j`.

    Tolerances: the reference log_softmax bounds for a row of length :math:`|U|`
    (tolerances.reference_log_softmax_bound, and tolerances.log_softmax_backward_bound
    at the dtype plus at float64): the masked entries add exact zeros to every sum.
    """
    x, dout = case["x"], case["dout"]
    call = impl.forward(x)
    dx = impl.backward(dout, call.cache).dx if impl.has_backward else None
    for r in _partial_rows(x):
        keep = np.isfinite(x[r])
        sub = x[r : r + 1, keep]
        z_ref = log_softmax(sub)
        assert_within(
            call.y[r : r + 1, keep],
            z_ref,
            reference_log_softmax_bound(sub, z_ref, x.dtype),
            invariant=_ID_SUBSET,
            what=f"forward(x)[{r}] at unmasked entries vs log_softmax of those entries",
            message=f"row {r}: the unmasked entries are not the log_softmax of the unmasked logits",
        )
        if dx is not None:
            g = dout[r : r + 1, keep]
            assert_within(
                dx[r : r + 1, keep],
                log_softmax_vjp(g, z_ref),
                reference_log_softmax_backward_bound(sub, z_ref, g, x.dtype),
                invariant=_ID_SUBSET,
                what=f"backward(dout)[{r}] at unmasked entries vs the subset's VJP",
                message=f"row {r}: the gradient of the unmasked entries is not the subset's VJP",
            )


def fully_masked_rows(impl: Implementation, case: Case) -> None:
    """A fully masked row's output is all -inf or all NaN; each gradient entry is 0 or NaN.

    (The semantics documented above; exact.)
    """
    x, dout = case["x"], case["dout"]
    full = np.flatnonzero(np.isneginf(x).all(axis=1))
    if full.size == 0:
        return
    call = impl.forward(x)
    for r in full:
        row = call.y[r]
        if not (np.all(np.isneginf(row)) or np.all(np.isnan(row))):
            raise InvariantViolation(
                "fully_masked_rows",
                f"row {r} is fully masked; its output must be all -inf or all NaN, got {row!r}",
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
