"""The invariants: each a property every correct softmax forward/backward satisfies.

Each has a stable id, a docstring with its math and tolerance derivation, a
check ``check(impl, case)`` that raises ``InvariantViolation`` when the
property fails, and a strategy of cases per dtype. ``INVARIANTS`` lists them in
report order: forward properties first, then backward ones.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from hypothesis.strategies import SearchStrategy

from softmax_verify.domain import Domain
from softmax_verify.implementation import Implementation
from softmax_verify.invariants import _backward, _cases, _determinism, _forward, _stages
from softmax_verify.invariants._cases import Case, Shapes

__all__ = ["INVARIANTS", "INVARIANT_IDS", "SUMMARIES", "Case", "Invariant", "get_invariant"]


@dataclass(frozen=True)
class Invariant:
    """One property: ``check`` raises InvariantViolation on a counterexample."""

    id: str
    needs_backward: bool
    check: Callable[[Implementation, Case], None]
    build: Callable[[np.dtype[Any], Shapes], SearchStrategy[Case]]

    def cases(self, dtype: np.dtype[Any], domain: Domain | None = None) -> SearchStrategy[Case]:
        """The strategy of this invariant's cases at ``dtype``, shapes inside ``domain``."""
        return self.build(dtype, (domain or Domain()).shapes())

    @property
    def doc(self) -> str:
        return (self.check.__doc__ or "").strip()

    @property
    def summary(self) -> str:
        """The property in one line of plain text (the docstring has the math)."""
        return SUMMARIES[self.id]


SUMMARIES: dict[str, str] = {
    "finite_for_finite_input": "finite x (up to the dtype's max) gives finite y, and finite dx",
    "rows_sum_to_one": "|sum_i y_i - 1| <= gamma(D + 10 + 2 ln D) + D*tiny for every row",
    "outputs_in_unit_interval": "0 <= y_i <= 1 + 2u",
    "dtype_preserved": "y.dtype == x.dtype and dx.dtype == dout.dtype",
    "input_not_mutated": "forward leaves x unchanged; backward leaves dout and the cache unchanged",
    "shift_invariance": "f(x + c) == f(x) for a per-row constant c",
    "permutation_equivariance": "f(x[:, p]) == f(x)[:, p] for a column permutation p",
    "row_independence": "f(x)[r] == f(x[r:r+1])[0]: rows are separate distributions",
    "matches_reference": "|y_i - y_ref_i| <= eta_i * y_i + tiny against the float64 reference",
    "deterministic": "two calls on the same x (and dout) agree within twice the error bound",
    "ones_upstream_gives_zero": "B(c * ones) == 0: softmax ignores a common shift of its logits",
    "central_differences": "B(g) == central differences of sum(g * f(x)), entry by entry",
    "jacobian_symmetry": "<u, B(v)> == <v, B(u)> per row: J = diag(y) - y y^T is symmetric",
    "jacobian_psd": "<v, B(v)> >= 0 per row: J is positive semi-definite",
    "linearity_in_upstream": "B(a u + b v) == a B(u) + b B(v)",
    "backward_matches_reference": "B(g) == y * (g - <g, y>) from the float64 reference",
    "stage_gradients": "each named stage (dexps_0 ... dx) is right for the forward's own cache",
}


def _forward_cases(dtype: np.dtype[Any], shape: Shapes) -> SearchStrategy[Case]:
    return _cases.forward_case(dtype, shape)


def _moderate_cases(dtype: np.dtype[Any], shape: Shapes) -> SearchStrategy[Case]:
    return _cases.backward_case(dtype, shape)


def _fd_cases(dtype: np.dtype[Any], shape: Shapes) -> SearchStrategy[Case]:
    return _cases.backward_case(dtype, shape, well_conditioned=True)


INVARIANTS: tuple[Invariant, ...] = (
    Invariant("finite_for_finite_input", False, _forward.finite_for_finite_input, _forward_cases),
    Invariant("rows_sum_to_one", False, _forward.rows_sum_to_one, _cases.logits_case),
    Invariant(
        "outputs_in_unit_interval", False, _forward.outputs_in_unit_interval, _cases.logits_case
    ),
    Invariant("dtype_preserved", False, _forward.dtype_preserved, _forward_cases),
    Invariant("input_not_mutated", False, _forward.input_not_mutated, _forward_cases),
    Invariant("shift_invariance", False, _forward.shift_invariance, _cases.shift_case),
    Invariant(
        "permutation_equivariance",
        False,
        _forward.permutation_equivariance,
        _cases.permutation_case,
    ),
    Invariant("row_independence", False, _forward.row_independence, _cases.logits_case),
    Invariant("matches_reference", False, _forward.matches_reference, _cases.logits_case),
    Invariant("deterministic", False, _determinism.deterministic, _forward_cases),
    Invariant(
        "ones_upstream_gives_zero", True, _backward.ones_upstream_gives_zero, _cases.ones_case
    ),
    Invariant("central_differences", True, _backward.central_differences, _fd_cases),
    Invariant("jacobian_symmetry", True, _backward.jacobian_symmetry, _cases.pair_case),
    Invariant("jacobian_psd", True, _backward.jacobian_psd, _moderate_cases),
    Invariant("linearity_in_upstream", True, _backward.linearity_in_upstream, _cases.pair_case),
    Invariant(
        "backward_matches_reference", True, _backward.backward_matches_reference, _forward_cases
    ),
    Invariant("stage_gradients", True, _stages.stage_gradients, _cases.stage_case),
)

INVARIANT_IDS: tuple[str, ...] = tuple(inv.id for inv in INVARIANTS)


def get_invariant(invariant_id: str) -> Invariant:
    """The invariant with this id; ValueError listing the ids if there is none."""
    for inv in INVARIANTS:
        if inv.id == invariant_id:
            return inv
    raise ValueError(f"invariant must be one of {', '.join(INVARIANT_IDS)}; got {invariant_id!r}")
