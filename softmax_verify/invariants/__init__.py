"""The invariants: each a property every correct softmax forward/backward satisfies.

Each has a stable id, a docstring with its math and tolerance derivation, a
check ``check(impl, case)`` that raises ``InvariantViolation`` when the
property fails, a strategy of cases per dtype, and the kinds it applies to
(``softmax``, ``log_softmax``: softmax_verify.kinds). An id may have one entry per
kind (the same property, with that kind's math and tolerance). ``REGISTRY`` holds
them all in report order, forward properties first; ``invariants_for(kind)`` picks
one kind's set; ``INVARIANTS`` is the softmax set.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from hypothesis.strategies import SearchStrategy

from softmax_verify.domain import Domain
from softmax_verify.implementation import Implementation
from softmax_verify.invariants import (
    _backward,
    _cases,
    _determinism,
    _forward,
    _gradient_sums,
    _log_backward,
    _log_masked,
    _log_softmax,
    _masked,
    _stages,
)
from softmax_verify.invariants._cases import Case, Shapes
from softmax_verify.kinds import KINDS, Kind, check_kind

__all__ = [
    "ALL_IDS",
    "INVARIANTS",
    "INVARIANT_IDS",
    "REGISTRY",
    "SUMMARIES",
    "Case",
    "Invariant",
    "get_invariant",
    "invariants_for",
]

SOFTMAX: tuple[Kind, ...] = ("softmax",)
LOG_SOFTMAX: tuple[Kind, ...] = ("log_softmax",)


@dataclass(frozen=True)
class Invariant:
    """One property: ``check`` raises InvariantViolation on a counterexample."""

    id: str
    needs_backward: bool
    check: Callable[[Implementation, Case], None]
    build: Callable[[np.dtype[Any], Shapes], SearchStrategy[Case]]
    #: The kinds of function this entry checks (softmax_verify.kinds.KINDS).
    kinds: tuple[Kind, ...] = SOFTMAX
    #: Drawn only when masked rows are asked for (``masked=True``, ``--masked``).
    masked_only: bool = False

    def cases(self, dtype: np.dtype[Any], domain: Domain | None = None) -> SearchStrategy[Case]:
        """The strategy of this invariant's cases at ``dtype``, shapes inside ``domain``."""
        return self.build(dtype, (domain or Domain()).shapes())

    @property
    def doc(self) -> str:
        return (self.check.__doc__ or "").strip()

    @property
    def summary(self) -> str:
        """The property in one line of plain text (the docstring has the math)."""
        if self.kinds == LOG_SOFTMAX and self.id in LOG_SUMMARIES:
            return LOG_SUMMARIES[self.id]
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
    "gradient_rows_sum_to_zero": "sum_i B(g)_i == 0 per row, for any g: J 1 = 0 (shift invariance)",
    "masked_entries_exactly_zero": "a -inf entry of a row gets exactly 0 probability and gradient",
    "masked_rows_match_subset": "unmasked entries == softmax (and VJP) of the unmasked subset",
    "fully_masked_rows": "an all -inf row gives all 0 or all NaN, and gradient entries 0 or NaN",
}

#: One-line summaries of the log_softmax entries whose property reads differently.
LOG_SUMMARIES: dict[str, str] = {
    "finite_for_finite_input": "finite x (|x| up to half the dtype's max) gives finite z and dx",
    "rows_logsumexp_zero": "log sum_i exp(z_i) == 0 per row, within sum_i y_i (e^a_i - 1)",
    "entries_nonpositive": "z_i <= gamma(D + 10 + 5 ln D) + D*tiny: log-probabilities are <= 0",
    "shift_invariance": "z(x + c) == z(x) for a per-row constant c",
    "permutation_equivariance": "z(x[:, p]) == z(x)[:, p] for a column permutation p",
    "row_independence": "z(x)[r] == z(x[r:r+1])[0]: rows are separate distributions",
    "matches_reference": "|z_i - z_ref_i| <= a_i, absolute, against the float64 reference",
    "central_differences": "B(g) == central differences of sum(g * z(x)), entry by entry",
    "linearity_in_upstream": "B(a u + b v) == a B(u) + b B(v)",
    "backward_matches_reference": "rank one: B(g) == g - softmax(x) * sum(g) (float64 reference)",
    "deterministic": "two calls on the same x (and dout) agree within twice the error bound",
    "masked_entries_exactly_zero": "a -inf entry of a row gets exactly -inf, and 0 gradient",
    "masked_rows_match_subset": "unmasked entries == log_softmax (and VJP) of the unmasked subset",
    "fully_masked_rows": "an all -inf row gives all -inf or all NaN, and gradient entries 0 or NaN",
}


def _forward_cases(dtype: np.dtype[Any], shape: Shapes) -> SearchStrategy[Case]:
    return _cases.forward_case(dtype, shape)


def _moderate_cases(dtype: np.dtype[Any], shape: Shapes) -> SearchStrategy[Case]:
    return _cases.backward_case(dtype, shape)


def _fd_cases(dtype: np.dtype[Any], shape: Shapes) -> SearchStrategy[Case]:
    return _cases.backward_case(dtype, shape, well_conditioned=True)


REGISTRY: tuple[Invariant, ...] = (
    Invariant("finite_for_finite_input", False, _forward.finite_for_finite_input, _forward_cases),
    Invariant(
        "finite_for_finite_input",
        False,
        _log_softmax.finite_for_finite_input,
        _cases.half_range_forward_case,
        kinds=LOG_SOFTMAX,
    ),
    Invariant("rows_sum_to_one", False, _forward.rows_sum_to_one, _cases.logits_case),
    Invariant(
        "rows_logsumexp_zero",
        False,
        _log_softmax.rows_logsumexp_zero,
        _cases.half_range_logits_case,
        kinds=LOG_SOFTMAX,
    ),
    Invariant(
        "outputs_in_unit_interval", False, _forward.outputs_in_unit_interval, _cases.logits_case
    ),
    Invariant(
        "entries_nonpositive",
        False,
        _log_softmax.entries_nonpositive,
        _cases.half_range_logits_case,
        kinds=LOG_SOFTMAX,
    ),
    Invariant("dtype_preserved", False, _forward.dtype_preserved, _forward_cases, kinds=KINDS),
    Invariant("input_not_mutated", False, _forward.input_not_mutated, _forward_cases, kinds=KINDS),
    Invariant("shift_invariance", False, _forward.shift_invariance, _cases.shift_case),
    Invariant(
        "shift_invariance",
        False,
        _log_softmax.shift_invariance,
        _cases.shift_case,
        kinds=LOG_SOFTMAX,
    ),
    Invariant(
        "permutation_equivariance",
        False,
        _forward.permutation_equivariance,
        _cases.permutation_case,
    ),
    Invariant(
        "permutation_equivariance",
        False,
        _log_softmax.permutation_equivariance,
        _cases.half_range_permutation_case,
        kinds=LOG_SOFTMAX,
    ),
    Invariant("row_independence", False, _forward.row_independence, _cases.logits_case),
    Invariant(
        "row_independence",
        False,
        _log_softmax.row_independence,
        _cases.half_range_logits_case,
        kinds=LOG_SOFTMAX,
    ),
    Invariant("matches_reference", False, _forward.matches_reference, _cases.logits_case),
    Invariant("deterministic", False, _determinism.deterministic, _forward_cases),
    Invariant(
        "matches_reference",
        False,
        _log_softmax.matches_reference,
        _cases.half_range_logits_case,
        kinds=LOG_SOFTMAX,
    ),
    Invariant(
        "deterministic",
        needs_backward=False,
        check=_determinism.log_softmax_deterministic,
        build=_cases.half_range_forward_case,
        kinds=LOG_SOFTMAX,
    ),
    Invariant(
        "ones_upstream_gives_zero", True, _backward.ones_upstream_gives_zero, _cases.ones_case
    ),
    Invariant(
        "gradient_rows_sum_to_zero",
        True,
        _gradient_sums.softmax_gradient_rows_sum_to_zero,
        _moderate_cases,
    ),
    Invariant(
        "gradient_rows_sum_to_zero",
        True,
        _gradient_sums.log_softmax_gradient_rows_sum_to_zero,
        _moderate_cases,
        kinds=LOG_SOFTMAX,
    ),
    Invariant("central_differences", True, _backward.central_differences, _fd_cases),
    Invariant(
        "central_differences",
        True,
        _log_backward.central_differences,
        _fd_cases,
        kinds=LOG_SOFTMAX,
    ),
    Invariant("jacobian_symmetry", True, _backward.jacobian_symmetry, _cases.pair_case),
    Invariant("jacobian_psd", True, _backward.jacobian_psd, _moderate_cases),
    Invariant("linearity_in_upstream", True, _backward.linearity_in_upstream, _cases.pair_case),
    Invariant(
        "linearity_in_upstream",
        True,
        _log_backward.linearity_in_upstream,
        _cases.pair_case,
        kinds=LOG_SOFTMAX,
    ),
    Invariant(
        "backward_matches_reference", True, _backward.backward_matches_reference, _forward_cases
    ),
    Invariant(
        "backward_matches_reference",
        True,
        _log_backward.backward_matches_reference,
        _moderate_cases,
        kinds=LOG_SOFTMAX,
    ),
    Invariant("stage_gradients", True, _stages.stage_gradients, _cases.stage_case),
    Invariant(
        "masked_entries_exactly_zero",
        False,
        _masked.masked_entries_exactly_zero,
        _cases.masked_case,
        masked_only=True,
    ),
    Invariant(
        "masked_rows_match_subset",
        False,
        _masked.masked_rows_match_subset,
        _cases.masked_case,
        masked_only=True,
    ),
    Invariant(
        "fully_masked_rows", False, _masked.fully_masked_rows, _cases.masked_case, masked_only=True
    ),
    Invariant(
        "masked_entries_exactly_zero",
        needs_backward=False,
        check=_log_masked.masked_entries_exactly_zero,
        build=_cases.masked_log_case,
        kinds=LOG_SOFTMAX,
        masked_only=True,
    ),
    Invariant(
        "masked_rows_match_subset",
        needs_backward=False,
        check=_log_masked.masked_rows_match_subset,
        build=_cases.masked_log_case,
        kinds=LOG_SOFTMAX,
        masked_only=True,
    ),
    Invariant(
        "fully_masked_rows",
        needs_backward=False,
        check=_log_masked.fully_masked_rows,
        build=_cases.masked_log_case,
        kinds=LOG_SOFTMAX,
        masked_only=True,
    ),
)


def invariants_for(kind: str = "softmax", *, masked: bool = False) -> tuple[Invariant, ...]:
    """The invariants that apply to ``kind``, in report order; with ``masked``, also
    those checked only on rows with masked (-inf) entries."""
    resolved = check_kind(kind)
    return tuple(
        inv for inv in REGISTRY if resolved in inv.kinds and (masked or not inv.masked_only)
    )


#: The softmax set (the default kind, without masked rows).
INVARIANTS: tuple[Invariant, ...] = invariants_for("softmax")

INVARIANT_IDS: tuple[str, ...] = tuple(inv.id for inv in INVARIANTS)

#: Every id of every kind, in report order (what ``--invariant`` accepts).
ALL_IDS: tuple[str, ...] = tuple(dict.fromkeys(inv.id for inv in REGISTRY))


def get_invariant(invariant_id: str, kind: str = "softmax", *, masked: bool = True) -> Invariant:
    """The invariant with this id for ``kind``; ValueError listing that kind's ids if none."""
    candidates = invariants_for(kind, masked=masked)
    for inv in candidates:
        if inv.id == invariant_id:
            return inv
    ids = ", ".join(inv.id for inv in candidates)
    raise ValueError(f"invariant must be one of {ids} (for kind {kind!r}); got {invariant_id!r}")
