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

from softmax_verify.core.implementation import Implementation
from softmax_verify.core.options import Accumulation
from softmax_verify.core.oracle import log_softmax, log_softmax_vjp
from softmax_verify.invariants._cases import Case
from softmax_verify.invariants._masked_rows import (
    MaskedKind,
    check_fully_masked_rows,
    check_masked_entries,
    check_subset_rows,
)
from softmax_verify.tolerances import (
    reference_log_softmax_backward_bound,
    reference_log_softmax_bound,
)

__all__ = ["fully_masked_rows", "masked_entries_exactly_zero", "masked_rows_match_subset"]

_LOG_SOFTMAX = MaskedKind(
    name="log_softmax",
    masked_value=-np.inf,
    reference=log_softmax,
    vjp=log_softmax_vjp,
    forward_bound=reference_log_softmax_bound,
    backward_bound=reference_log_softmax_backward_bound,
    masked_output_message="a masked (-inf) entry did not get log-probability -inf",
    masked_gradient_what="backward(dout) at masked entries (dout 0 there)",
)


def masked_entries_exactly_zero(
    impl: Implementation, case: Case, accumulate: Accumulation = "float32"
) -> None:
    r"""A masked entry (``-inf``) of a row with an unmasked one gets exactly ``-inf``
    (log-probability of probability 0) and, for a zero upstream there, exactly 0 gradient:
    :math:`z_i = -\infty - \log s` and :math:`dx_i = g_i - 0 \cdot \sum_j g_j = 0`.

    Exact, no tolerance: a mask emulated by a large negative number (-1e4, the dtype's
    min) gives a finite log-probability, and a backward that replaces ``-inf`` by a
    finite value moves gradient onto the masked entries.
    """
    check_masked_entries(impl, case, _LOG_SOFTMAX)


def masked_rows_match_subset(
    impl: Implementation, case: Case, accumulate: Accumulation = "float32"
) -> None:
    r"""The unmasked entries U of each row equal :math:`\operatorname{log\_softmax}(x_U)`,
    and their gradient the log_softmax VJP of that subset, :math:`g_U - y_U \sum_U g_j`.

    Tolerances: the reference log_softmax bounds for a row of length :math:`|U|`
    (tolerances.reference_log_softmax_bound, and tolerances.log_softmax_backward_bound
    at the dtype plus at float64): the masked entries add exact zeros to every sum.
    """
    check_subset_rows(impl, case, _LOG_SOFTMAX, accumulate=accumulate)


def fully_masked_rows(
    impl: Implementation, case: Case, accumulate: Accumulation = "float32"
) -> None:
    """A fully masked row's output is all -inf or all NaN; each gradient entry is 0 or NaN.

    (The semantics documented above; exact.)
    """
    check_fully_masked_rows(impl, case, _LOG_SOFTMAX)
