r"""Forward invariants: properties of ``y = forward(x)`` alone.

Each check takes the implementation, one case and the half-precision accumulation
model (``accumulate``, passed to every tolerance), and raises ``InvariantViolation``
when the property fails. Tolerances come from ``softmax_verify.tolerances`` (per entry
:math:`\eta_i y_i + \lambda`), always sized from the float64 reference, never from the
values under test.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from softmax_verify.core.compare import assert_within
from softmax_verify.core.errors import InvariantViolation
from softmax_verify.core.implementation import Implementation
from softmax_verify.core.options import Accumulation
from softmax_verify.core.oracle import softmax as exact
from softmax_verify.invariants._cases import Case
from softmax_verify.tolerances import (
    forward_error_bound,
    reference_forward_bound,
    row_sum_bound,
    softmax_perturbation,
    unit_interval_slack,
)

__all__ = [
    "dtype_preserved",
    "finite_for_finite_input",
    "input_not_mutated",
    "matches_reference",
    "outputs_in_unit_interval",
    "permutation_equivariance",
    "row_independence",
    "rows_sum_to_one",
    "shift_invariance",
]

F64 = NDArray[np.float64]


def _first_bad(mask: NDArray[np.bool_], values: NDArray[Any]) -> str:
    index = tuple(int(i) for i in np.argwhere(mask)[0])
    return f"{int(mask.sum())} of {mask.size} entries; first at index {index}: {values[index]!r}"


def check_finite(impl: Implementation, case: Case) -> None:
    """forward(x), then backward(dout, cache) when there is one: every entry finite (exact)."""
    x, dout = case["x"], case["dout"]
    call = impl.forward(x)
    bad = ~np.isfinite(call.y)
    if bad.any():
        raise InvariantViolation(
            "finite_for_finite_input", "forward(x) is not finite: " + _first_bad(bad, call.y)
        )
    if impl.has_backward:
        dx = impl.backward(dout, call.cache).dx
        bad = ~np.isfinite(dx)
        if bad.any():
            raise InvariantViolation(
                "finite_for_finite_input",
                "backward(dout, cache) is not finite for finite x and dout: " + _first_bad(bad, dx),
            )


#: A per-entry bound on ``x`` under an accumulation model: ``bound(x, accumulate)``.
Bound = Callable[[NDArray[Any], Accumulation], NDArray[np.float64]]


def _bound(x: NDArray[Any], accumulate: Accumulation) -> NDArray[np.float64]:
    """The forward's per-entry error bound on ``x`` (tolerances.forward_error_bound)."""
    return forward_error_bound(x, exact(x), x.dtype, accumulate=accumulate)


def check_permuted(
    impl: Implementation,
    case: Case,
    bound: Bound,
    function: str,
    *,
    accumulate: Accumulation,
) -> None:
    """forward(x[:, perm]) against forward(x)[:, perm] within twice ``bound(x, accumulate)``
    (each side carries its own error); ``function`` names what the code computes."""
    x, perm = case["x"], case["perm"]
    assert_within(
        impl.forward(np.ascontiguousarray(x[:, perm])).y,
        impl.forward(x).y[:, perm],
        2 * bound(x, accumulate)[:, perm],
        invariant="permutation_equivariance",
        what="forward(x[:, perm]) vs forward(x)[:, perm]",
        message=f"permuting the entries of a row did not permute its {function} the same way",
    )


def check_rows_alone(
    impl: Implementation,
    case: Case,
    bound: Bound,
    function: str,
    *,
    accumulate: Accumulation,
) -> None:
    """forward(x) against forward of each row alone, within twice ``bound(x, accumulate)``."""
    x = case["x"]
    batch = impl.forward(x).y
    alone = np.concatenate(impl.forward_each([x[r : r + 1].copy() for r in range(x.shape[0])]))
    assert_within(
        batch,
        alone,
        2 * bound(x, accumulate),
        invariant="row_independence",
        what="forward(x)[r] vs forward(x[r:r+1])[0]",
        message=f"a row's {function} depends on the other rows of the batch",
    )


def finite_for_finite_input(
    impl: Implementation, case: Case, accumulate: Accumulation = "float32"
) -> None:
    r"""Finite x gives finite y, for :math:`|x|` up to the dtype's max; likewise dx for finite dout.

    A forward that computes :math:`e^{x}` without subtracting the row maximum
    overflows to inf (and inf/inf = NaN) as soon as :math:`x > 88` (float32) or
    :math:`x > 709` (float64). Exact: no tolerance.
    """
    check_finite(impl, case)


def rows_sum_to_one(impl: Implementation, case: Case, accumulate: Accumulation = "float32") -> None:
    r""":math:`|\sum_i \hat y_i - 1| \le \gamma_{D + 10 + 2\ln D} + D\lambda` for every row.

    (tolerances.row_sum_bound: the per-entry bound summed, using
    :math:`\sum_i y_i t_i \le \ln D`; about 4e-14 in float64 and 5e-6 in float32 at D = 64.)
    """
    x = case["x"]
    y = impl.forward(x).y
    sums = y.astype(np.float64).sum(axis=1)
    tol = row_sum_bound(x.shape[1], x.dtype, accumulate=accumulate)
    assert_within(
        sums,
        np.ones_like(sums),
        tol,
        invariant="rows_sum_to_one",
        what="row sums of forward(x)",
        message=f"rows of forward(x) do not sum to 1 within {tol:.3g}",
    )


def outputs_in_unit_interval(
    impl: Implementation, case: Case, accumulate: Accumulation = "float32"
) -> None:
    r""":math:`0 \le \hat y_i \le 1 + 2u`: probabilities, up to a reciprocal-multiply rounding.

    NaN counts as outside. (tolerances.unit_interval_slack derives the 2u.)
    """
    x = case["x"]
    y = impl.forward(x).y.astype(np.float64)
    slack = unit_interval_slack(x.dtype)
    nearest = np.where(np.isnan(y), 0.5, np.clip(y, 0.0, 1.0))
    assert_within(
        y,
        nearest,
        np.where(y > 1, slack, 0.0),
        invariant="outputs_in_unit_interval",
        what="forward(x) against [0, 1]",
        message=f"forward(x) has entries outside [0, 1 + {slack:.3g}]",
    )


def dtype_preserved(impl: Implementation, case: Case, accumulate: Accumulation = "float32") -> None:
    """``forward(x).dtype == x.dtype`` and ``backward(dout, cache).dtype == dout.dtype``. Exact."""
    x, dout = case["x"], case["dout"]
    call = impl.forward(x)
    if call.y.dtype != x.dtype:
        raise InvariantViolation(
            "dtype_preserved", f"forward(x) returned {call.y.dtype} for x of dtype {x.dtype}"
        )
    if impl.has_backward:
        dx = impl.backward(dout, call.cache).dx
        if dx.dtype != dout.dtype:
            raise InvariantViolation(
                "dtype_preserved",
                f"backward returned dx of dtype {dx.dtype} for dout of dtype {dout.dtype}",
            )


def input_not_mutated(
    impl: Implementation, case: Case, accumulate: Accumulation = "float32"
) -> None:
    """forward leaves ``x`` unchanged; backward leaves ``dout`` and the cache unchanged. Exact.

    (The verifier hands the code copies, so a mutation is seen here but cannot
    corrupt any other check.)
    """
    x, dout = case["x"], case["dout"]
    call = impl.forward(x)
    if call.mutated_input:
        raise InvariantViolation("input_not_mutated", "forward(x) wrote to its input x")
    if impl.has_backward:
        back = impl.backward(dout, call.cache)
        if back.mutated_dout:
            raise InvariantViolation("input_not_mutated", "backward wrote to its input dout")
        if back.mutated_cache:
            raise InvariantViolation(
                "input_not_mutated", "backward wrote to the cache (or y) it was given"
            )


def _two_sum_error(a: NDArray[np.float64], b: NDArray[np.float64]) -> NDArray[np.float64]:
    """Knuth's TwoSum: ``(a + b) - fl(a + b)`` exactly (float64, no overflow)."""
    total = a + b
    b_virtual = total - a  # the part of the total that came from b
    error: NDArray[np.float64] = (a - (total - b_virtual)) + (b - b_virtual)
    return error


def shift_invariance(
    impl: Implementation, case: Case, accumulate: Accumulation = "float32"
) -> None:
    r""":math:`f(x + c) = f(x)` for a per-row constant c.

    The shifted input is rounded to the dtype: :math:`\tilde x = x + c + \delta`,
    with :math:`\delta` recovered exactly (TwoSum). Softmax moves by at most
    :math:`y_i (e^{2\|\delta\|_\infty} - 1)` under a perturbation
    :math:`\delta`, so the tolerance is the forward bound at x, the forward bound
    at :math:`\tilde x`, and that term.
    """

    def tolerance(
        x: NDArray[Any], shifted: NDArray[Any], spread: F64, accumulate: Accumulation
    ) -> F64:
        y_ref = exact(x)
        return (
            forward_error_bound(x, y_ref, x.dtype, accumulate=accumulate)
            + forward_error_bound(shifted, exact(shifted), x.dtype, accumulate=accumulate)
            + softmax_perturbation(y_ref, spread)
        )

    check_shifted(impl, case, tolerance, "softmax", accumulate=accumulate)


def check_shifted(
    impl: Implementation,
    case: Case,
    tolerance: Callable[[NDArray[Any], NDArray[Any], F64, Accumulation], F64],
    function: str,
    *,
    accumulate: Accumulation,
) -> None:
    r"""forward(x + shift) against forward(x), within ``tolerance(x, shifted, spread,
    accumulate)``.

    The shifted input rounds to :math:`x + c + \delta`, :math:`\delta` exact by TwoSum;
    ``spread`` is :math:`\max_i |\delta_i|` per row (shape (N, 1)).
    """
    x, shift = case["x"], case["shift"]
    with np.errstate(over="ignore"):
        shifted = (x + shift).astype(x.dtype)
    x_wide, shift_wide, shifted_wide = (
        a.astype(np.float64) for a in (x, np.broadcast_to(shift, x.shape), shifted)
    )
    delta = (shifted_wide - (x_wide + shift_wide)) - _two_sum_error(x_wide, shift_wide)
    spread = np.abs(delta).max(axis=1, keepdims=True)
    assert_within(
        impl.forward(shifted).y,
        impl.forward(x).y,
        tolerance(x, shifted, spread, accumulate),
        invariant="shift_invariance",
        what="forward(x + shift) vs forward(x)",
        message=f"adding a constant to a row changed its {function}",
    )


def permutation_equivariance(
    impl: Implementation, case: Case, accumulate: Accumulation = "float32"
) -> None:
    r""":math:`f(x P) = f(x) P` for a permutation P of the columns.

    Tolerance: both sides within the forward bound of the exact value, so twice it.
    """
    check_permuted(impl, case, _bound, "softmax", accumulate=accumulate)


def row_independence(
    impl: Implementation, case: Case, accumulate: Accumulation = "float32"
) -> None:
    r"""Row r of :math:`f(x)` equals :math:`f` of row r alone: rows are separate distributions.

    Catches a sum or max over the wrong axis, or over the whole batch. Tolerance:
    twice the forward bound.
    """
    check_rows_alone(impl, case, _bound, "softmax", accumulate=accumulate)


def matches_reference(
    impl: Implementation, case: Case, accumulate: Accumulation = "float32"
) -> None:
    r""":math:`|\hat y_i - y_i| \le \eta_i y_i + \lambda` against the float64 reference.

    The only forward check that catches a forward that is wrong but
    self-consistent (a temperature, a clipped logit) whose backward agrees with it.
    """
    x = case["x"]
    y_ref = exact(x)
    assert_within(
        impl.forward(x).y,
        y_ref,
        reference_forward_bound(x, y_ref, x.dtype, accumulate=accumulate),
        invariant="matches_reference",
        what="forward(x) vs float64 reference",
        message="forward(x) differs from the reference softmax beyond the derived error bound",
    )
