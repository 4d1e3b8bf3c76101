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

from softmax_verify.core.implementation import Implementation
from softmax_verify.core.options import Accumulation
from softmax_verify.core.oracle import softmax, softmax_vjp
from softmax_verify.invariants._cases import Case
from softmax_verify.invariants._masked_rows import (
    MaskedKind,
    check_fully_masked_rows,
    check_masked_entries,
    check_subset_rows,
)
from softmax_verify.tolerances import reference_backward_bound, reference_forward_bound

__all__ = ["fully_masked_rows", "masked_entries_exactly_zero", "masked_rows_match_subset"]

_SOFTMAX = MaskedKind(
    name="softmax",
    masked_value=0.0,
    reference=softmax,
    vjp=softmax_vjp,
    forward_bound=reference_forward_bound,
    backward_bound=reference_backward_bound,
    masked_output_message="a masked (-inf) entry got nonzero probability",
    masked_gradient_what="backward(dout) at masked entries",
)


def masked_entries_exactly_zero(
    impl: Implementation, case: Case, accumulate: Accumulation = "float32"
) -> None:
    r"""A masked entry (``-inf``) of a row with an unmasked one gets exactly 0 probability
    and exactly 0 gradient: :math:`e^{-\infty} = 0` and :math:`dx_i = y_i(\dots) = 0`.

    Exact, no tolerance: a mask emulated by a large negative number (-1e4, the dtype's
    min) leaks probability wherever the unmasked logits are not far above it.
    """
    check_masked_entries(impl, case, _SOFTMAX)


def masked_rows_match_subset(
    impl: Implementation, case: Case, accumulate: Accumulation = "float32"
) -> None:
    r"""The unmasked entries U of each row equal :math:`\operatorname{softmax}(x_U)`, and
    their gradient the softmax VJP of that subset, :math:`y_U(g_U - \langle g_U, y_U\rangle)`.

    Tolerances: the reference forward and backward bounds for a row of length
    :math:`|U|` (the masked entries contribute exact zeros to every sum).
    """
    check_subset_rows(impl, case, _SOFTMAX, accumulate=accumulate)


def fully_masked_rows(
    impl: Implementation, case: Case, accumulate: Accumulation = "float32"
) -> None:
    """A fully masked row's output is all 0 or all NaN; each gradient entry is 0 or NaN.

    (The semantics documented above; exact.)
    """
    check_fully_masked_rows(impl, case, _SOFTMAX)
