r"""The row loops of the masked-row checks, shared by softmax and log_softmax.

Both kinds treat a masked (``-inf``) entry the same way: it adds an exact zero to the row's
sum, so a masked entry's output is exact (0, or :math:`-\infty` for log_softmax), the
unmasked entries U are the function of :math:`x_U`, and a fully masked row is all that
exact value or all NaN. A ``MaskedKind`` holds what differs: that value, the float64
reference and its VJP, their bounds, and the words of the two messages that differ. The
math of each kind is derived in ``_masked`` and ``_log_masked``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from numpy.typing import DTypeLike, NDArray

from softmax_verify.core.compare import assert_within
from softmax_verify.core.errors import InvariantViolation
from softmax_verify.core.implementation import Implementation
from softmax_verify.core.options import Accumulation
from softmax_verify.invariants._cases import Case

__all__ = [
    "BackwardBound",
    "ForwardBound",
    "MaskedKind",
    "check_fully_masked_rows",
    "check_masked_entries",
    "check_subset_rows",
    "partial_rows",
]

_ID_ENTRIES = "masked_entries_exactly_zero"
_ID_SUBSET = "masked_rows_match_subset"
_ID_FULL = "fully_masked_rows"


class ForwardBound(Protocol):
    """``forward_bound(x, reference, dtype, accumulate=...)``: a reference forward bound."""

    def __call__(
        self, x: NDArray[Any], exact: NDArray[Any], dtype: DTypeLike, /, *, accumulate: Accumulation
    ) -> NDArray[np.float64]: ...


class BackwardBound(Protocol):
    """``backward_bound(x, reference, g, dtype, accumulate=...)``: a reference VJP bound."""

    def __call__(
        self,
        x: NDArray[Any],
        exact: NDArray[Any],
        g: NDArray[Any],
        dtype: DTypeLike,
        /,
        *,
        accumulate: Accumulation,
    ) -> NDArray[np.float64]: ...


@dataclass(frozen=True)
class MaskedKind:
    """What one kind's masked-row checks compare with."""

    #: The function's name in messages ("softmax", "log_softmax").
    name: str
    #: The exact output at a masked entry, and at every entry of a fully masked row.
    masked_value: float
    #: The float64 reference of a row, and its VJP ``vjp(g, reference)``.
    reference: Callable[[NDArray[Any]], NDArray[np.float64]]
    vjp: Callable[[NDArray[Any], NDArray[Any]], NDArray[np.float64]]
    #: ``forward_bound(x, reference, dtype, accumulate=...)`` and
    #: ``backward_bound(x, reference, g, dtype, accumulate=...)``.
    forward_bound: ForwardBound
    backward_bound: BackwardBound
    #: The message when a masked entry's output is not ``masked_value``.
    masked_output_message: str
    #: What is compared at the masked entries of the gradient.
    masked_gradient_what: str


def partial_rows(x: NDArray[Any]) -> NDArray[np.intp]:
    """Rows with at least one unmasked entry."""
    return np.flatnonzero(np.isfinite(x).any(axis=1))


def check_masked_entries(impl: Implementation, case: Case, kind: MaskedKind) -> None:
    """In rows with an unmasked entry: the output is exactly ``kind.masked_value`` and the
    gradient exactly 0 at every masked entry."""
    x, dout = case["x"], case["dout"]
    rows = partial_rows(x)
    masked = np.isneginf(x[rows])
    call = impl.forward(x)
    y = call.y[rows]
    assert_within(
        np.where(masked, y, kind.masked_value),
        np.full(y.shape, kind.masked_value),
        0.0,
        invariant=_ID_ENTRIES,
        what="forward(x) at masked entries",
        message=kind.masked_output_message,
    )
    if impl.has_backward:
        dx = impl.backward(dout, call.cache).dx[rows]
        assert_within(
            np.where(masked, dx, 0.0),
            np.zeros(dx.shape),
            0.0,
            invariant=_ID_ENTRIES,
            what=kind.masked_gradient_what,
            message="a masked (-inf) entry got a nonzero gradient",
        )


def check_subset_rows(
    impl: Implementation, case: Case, kind: MaskedKind, *, accumulate: Accumulation
) -> None:
    """Each row's unmasked entries U: the output within ``kind.forward_bound`` of the
    reference of :math:`x_U`, the gradient within ``kind.backward_bound`` of its VJP (both
    under the ``accumulate`` model)."""
    x, dout = case["x"], case["dout"]
    call = impl.forward(x)
    dx = impl.backward(dout, call.cache).dx if impl.has_backward else None
    for r in partial_rows(x):
        keep = np.isfinite(x[r])
        sub = x[r : r + 1, keep]
        exact = kind.reference(sub)
        assert_within(
            call.y[r : r + 1, keep],
            exact,
            kind.forward_bound(sub, exact, x.dtype, accumulate=accumulate),
            invariant=_ID_SUBSET,
            what=f"forward(x)[{r}] at unmasked entries vs {kind.name} of those entries",
            message=f"row {r}: the unmasked entries are not the {kind.name} of the unmasked logits",
        )
        if dx is not None:
            g = dout[r : r + 1, keep]
            assert_within(
                dx[r : r + 1, keep],
                kind.vjp(g, exact),
                kind.backward_bound(sub, exact, g, x.dtype, accumulate=accumulate),
                invariant=_ID_SUBSET,
                what=f"backward(dout)[{r}] at unmasked entries vs the subset's VJP",
                message=f"row {r}: the gradient of the unmasked entries is not the subset's VJP",
            )


def check_fully_masked_rows(impl: Implementation, case: Case, kind: MaskedKind) -> None:
    """Each fully masked row's output is all ``kind.masked_value`` or all NaN; each of its
    gradient entries is 0 or NaN."""
    x, dout = case["x"], case["dout"]
    full = np.flatnonzero(np.isneginf(x).all(axis=1))
    if full.size == 0:
        return
    call = impl.forward(x)
    for r in full:
        row = call.y[r]
        if not (np.all(row == kind.masked_value) or np.all(np.isnan(row))):
            raise InvariantViolation(
                _ID_FULL,
                f"row {r} is fully masked; its output must be all {kind.masked_value:g} "
                f"or all NaN, got {row!r}",
            )
    if impl.has_backward:
        dx = impl.backward(dout, call.cache).dx[full]
        finite_nonzero = np.isfinite(dx) & (dx != 0)
        if finite_nonzero.any():
            raise InvariantViolation(
                _ID_FULL,
                "a fully masked row got a finite nonzero gradient: "
                f"{int(finite_nonzero.sum())} entries, e.g. {dx[finite_nonzero][0]!r}",
            )
