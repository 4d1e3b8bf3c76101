"""The invariants: each a property every correct softmax forward/backward satisfies.

Each has a stable id; the property stated once, in words (``summary``) and as a
formula with its tolerance (``math``), which ``softmax-verify list`` and the README
print; a check ``check(impl, case, accumulate)`` that raises ``InvariantViolation`` when
the property fails, whose docstring derives the tolerance (``accumulate``: the
half-precision accumulation model, ``Options.accumulate``, which the check passes to
every tolerance it computes; ``"float32"`` by default); a strategy of cases per
dtype; and the kinds it applies to
(``softmax``, ``log_softmax``, ``cross_entropy``: softmax_verify.core.kinds). An id may
have one entry per kind (the same property, with that kind's math and tolerance). A
softmax kind's check takes an ``Implementation`` (a forward and a backward),
cross_entropy's a ``LossImplementation`` (a loss and its gradient: ``_loss_*``).
``REGISTRY`` holds them all in report order, forward properties first
(``SOFTMAX_REGISTRY``, then ``CROSS_ENTROPY_REGISTRY``); ``invariants_for(kind)`` picks
one kind's set; ``INVARIANTS`` is the softmax set.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass
from typing import Any, Generic, TypeVar

import numpy as np
from hypothesis.strategies import SearchStrategy

import softmax_verify.strategies as sv_st
from softmax_verify.core.domain import Domain
from softmax_verify.core.implementation import Implementation
from softmax_verify.core.kinds import SOFTMAX_KINDS, Kind, check_kind
from softmax_verify.core.loss_implementation import LossImplementation
from softmax_verify.core.options import Accumulation, LossOptions
from softmax_verify.invariants import (
    _backward,
    _cases,
    _determinism,
    _forward,
    _gradient_sums,
    _log_backward,
    _log_masked,
    _log_softmax,
    _loss_cases,
    _loss_forward,
    _loss_gradient,
    _masked,
    _stages,
)
from softmax_verify.invariants._cases import Case, Shapes

__all__ = [
    "ALL_IDS",
    "CROSS_ENTROPY_REGISTRY",
    "INVARIANTS",
    "INVARIANT_IDS",
    "NOTATION",
    "NOTATION_CE",
    "REGISTRY",
    "SOFTMAX_REGISTRY",
    "SUMMARIES",
    "Builder",
    "Case",
    "Impl",
    "Invariant",
    "get_invariant",
    "invariants_for",
]

SOFTMAX: tuple[Kind, ...] = ("softmax",)
LOG_SOFTMAX: tuple[Kind, ...] = ("log_softmax",)
CROSS_ENTROPY: tuple[Kind, ...] = ("cross_entropy",)

#: What a check calls: the softmax kinds' ``Implementation`` or cross_entropy's
#: ``LossImplementation`` (``core``).
Impl = TypeVar("Impl", Implementation, LossImplementation)
#: A strategy of cases at a dtype, over drawn shapes, for the run's loss options (the
#: label form and the reduction; the softmax kinds' cases have no labels).
Builder = Callable[[np.dtype[Any], Shapes, LossOptions], SearchStrategy[Case]]


@dataclass(frozen=True)
class Invariant(Generic[Impl]):
    """One property: ``check(impl, case, accumulate)`` raises InvariantViolation on a
    counterexample, its tolerances under the ``accumulate`` model. ``impl`` is an
    ``Implementation`` for the softmax kinds, a ``LossImplementation`` for cross_entropy.

    ``summary`` (the property in words) and ``math`` (its formula and tolerance, in
    plain ASCII so that every terminal prints it) are the one statement of the
    property: ``softmax-verify list`` prints them and the README's table is generated
    from them (softmax_verify.invariants.readme). The check's docstring (``doc``) holds the
    derivation: why the tolerance is what it is, and what the check catches.
    """

    id: str
    _: KW_ONLY
    needs_backward: bool
    summary: str
    math: str
    check: Callable[[Impl, Case, Accumulation], None]
    build: Builder
    #: The kinds of function this entry checks (softmax_verify.core.kinds.KINDS).
    kinds: tuple[Kind, ...] = SOFTMAX
    #: Drawn only when masked rows are asked for (``masked=True``, ``--masked``).
    masked_only: bool = False

    def cases(
        self, dtype: np.dtype[Any], domain: Domain | None = None, loss: LossOptions | None = None
    ) -> SearchStrategy[Case]:
        """The strategy of this invariant's cases at ``dtype``, shapes inside ``domain``, labels
        and upstreams as ``loss`` says (the run's ``Options.loss``)."""
        return self.build(dtype, sv_st.shapes_in(domain or Domain()), loss or LossOptions())

    @property
    def doc(self) -> str:
        """The check's docstring: the math in full and the tolerance's derivation."""
        return (self.check.__doc__ or "").strip()


class _Plain:
    """A softmax kind's builder as a ``Builder``: its cases have no labels, so the loss
    options are not used. A class, not a closure: a run's plan, invariants and all, is
    pickled to the lanes that check dtypes side by side (``isolation.lanes``)."""

    def __init__(self, builder: Callable[[np.dtype[Any], Shapes], SearchStrategy[Case]]) -> None:
        self.builder = builder

    def __call__(
        self, dtype: np.dtype[Any], shape: Shapes, loss: LossOptions
    ) -> SearchStrategy[Case]:
        return self.builder(dtype, shape)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Plain) and other.builder is self.builder

    def __hash__(self) -> int:
        return hash(self.builder)


def _plain(builder: Callable[[np.dtype[Any], Shapes], SearchStrategy[Case]]) -> Builder:
    """``builder`` wrapped (``_Plain``): equal wrappers for one builder, so that invariants
    sharing a builder still share their cases (``run.sharing``)."""
    return _Plain(builder)


def _forward_cases(dtype: np.dtype[Any], shape: Shapes) -> SearchStrategy[Case]:
    return _cases.forward_case(dtype, shape)


def _moderate_cases(dtype: np.dtype[Any], shape: Shapes) -> SearchStrategy[Case]:
    return _cases.backward_case(dtype, shape)


def _fd_cases(dtype: np.dtype[Any], shape: Shapes) -> SearchStrategy[Case]:
    return _cases.backward_case(dtype, shape, well_conditioned=True)


#: The symbols of the ``math`` fields below, one paragraph in lines (derivations:
#: docs/tolerances.md).
NOTATION: tuple[str, ...] = (
    "y = softmax(x), z = log_softmax(x), rows of length D; f: the forward under test;",
    "B(g): its dx for the upstream g; J: the Jacobian; u = eps/2 of the dtype; tiny: its",
    "smallest normal; gamma(n) = n u/(1 - n u); F, tau: the forward and backward bounds",
    "(softmax F = gamma(D + 10 + ln D + t_i) y_i + tiny, t_i = max(x) - x_i); F_64, tau_64:",
    "the same at float64; d: the rounding of an input the check forms (x + c, a u + b v)",
)
#: The symbols of the cross_entropy kind's ``math`` fields.
NOTATION_CE: tuple[str, ...] = (
    "L: the loss under test (the rows' losses l_i, or their mean or sum); y: the labels; q:",
    "a row's target (one-hot for a class index), S = sum_j q_j; p = softmax(x); dx: the",
    "gradient for the upstream g, weights c_i = g/N (mean), g (sum), g_i (none); B(g): dx at",
    "g; A, tau: the loss and gradient bounds (docs/tolerances.md, Cross-entropy); A_64,",
    "tau_64: the same at float64; w = 1/N (mean) or 1; d: the rounding of an input the check",
    "forms (x + c, a g + b g')",
)

SOFTMAX_REGISTRY: tuple[Invariant[Any], ...] = (
    Invariant(
        "finite_for_finite_input",
        needs_backward=False,
        summary="finite inputs give finite outputs",
        math="exact, for |x| <= max",
        check=_forward.finite_for_finite_input,
        build=_plain(_forward_cases),
    ),
    Invariant(
        "finite_for_finite_input",
        needs_backward=False,
        summary="finite inputs give finite outputs",
        math="exact, for |x| <= max/2",
        check=_log_softmax.finite_for_finite_input,
        build=_plain(_cases.half_range_forward_case),
        kinds=LOG_SOFTMAX,
    ),
    Invariant(
        "rows_sum_to_one",
        needs_backward=False,
        summary="rows are distributions",
        math="|sum_i y_i - 1| <= gamma(D + 10 + 2 ln D) + D*tiny",
        check=_forward.rows_sum_to_one,
        build=_plain(_cases.logits_case),
    ),
    Invariant(
        "rows_logsumexp_zero",
        needs_backward=False,
        summary="rows are log-distributions",
        math="|logsumexp(z)| <= b/(1 - b), b = sum_i y_i (exp(F_i) - 1)",
        check=_log_softmax.rows_logsumexp_zero,
        build=_plain(_cases.half_range_logits_case),
        kinds=LOG_SOFTMAX,
    ),
    Invariant(
        "outputs_in_unit_interval",
        needs_backward=False,
        summary="entries are probabilities",
        math="0 <= y_i <= 1 + 2u",
        check=_forward.outputs_in_unit_interval,
        build=_plain(_cases.logits_case),
    ),
    Invariant(
        "entries_nonpositive",
        needs_backward=False,
        summary="entries are log-probabilities",
        math="z_i <= gamma(D + 10 + 5 ln D) + D*tiny",
        check=_log_softmax.entries_nonpositive,
        build=_plain(_cases.half_range_logits_case),
        kinds=LOG_SOFTMAX,
    ),
    Invariant(
        "dtype_preserved",
        needs_backward=False,
        summary="outputs keep the inputs' dtype",
        math="f(x).dtype == x.dtype, B(g).dtype == g.dtype (exact)",
        check=_forward.dtype_preserved,
        build=_plain(_forward_cases),
        kinds=SOFTMAX_KINDS,
    ),
    Invariant(
        "input_not_mutated",
        needs_backward=False,
        summary="x, dout and the cache are not written to",
        math="exact",
        check=_forward.input_not_mutated,
        build=_plain(_forward_cases),
        kinds=SOFTMAX_KINDS,
    ),
    Invariant(
        "shift_invariance",
        needs_backward=False,
        summary="adding a constant to a row changes nothing",
        math="f(x + c) == f(x) +- (2F + y (exp(2|d|) - 1))",
        check=_forward.shift_invariance,
        build=_plain(_cases.shift_case),
    ),
    Invariant(
        "shift_invariance",
        needs_backward=False,
        summary="adding a constant to a row changes nothing",
        math="f(x + c) == f(x) +- (2F + 2|d|)",
        check=_log_softmax.shift_invariance,
        build=_plain(_cases.shift_case),
        kinds=LOG_SOFTMAX,
    ),
    Invariant(
        "permutation_equivariance",
        needs_backward=False,
        summary="permuting a row permutes its output",
        math="f(x[:, p]) == f(x)[:, p] +- 2F",
        check=_forward.permutation_equivariance,
        build=_plain(_cases.permutation_case),
    ),
    Invariant(
        "permutation_equivariance",
        needs_backward=False,
        summary="permuting a row permutes its output",
        math="f(x[:, p]) == f(x)[:, p] +- 2F",
        check=_log_softmax.permutation_equivariance,
        build=_plain(_cases.half_range_permutation_case),
        kinds=LOG_SOFTMAX,
    ),
    Invariant(
        "row_independence",
        needs_backward=False,
        summary="a row's output ignores the other rows",
        math="f(x)[r] == f(x[r]) +- 2F",
        check=_forward.row_independence,
        build=_plain(_cases.logits_case),
    ),
    Invariant(
        "row_independence",
        needs_backward=False,
        summary="a row's output ignores the other rows",
        math="f(x)[r] == f(x[r]) +- 2F",
        check=_log_softmax.row_independence,
        build=_plain(_cases.half_range_logits_case),
        kinds=LOG_SOFTMAX,
    ),
    Invariant(
        "matches_reference",
        needs_backward=False,
        summary="the forward matches the float64 reference",
        math="f(x) == the float64 reference +- (F + F_64)",
        check=_forward.matches_reference,
        build=_plain(_cases.logits_case),
    ),
    Invariant(
        "deterministic",
        needs_backward=False,
        summary="the same input gives the same output",
        math="f(x) == f(x) +- 2F, B(g) == B(g) +- 2 tau",
        check=_determinism.deterministic,
        build=_plain(_forward_cases),
    ),
    Invariant(
        "matches_reference",
        needs_backward=False,
        summary="the forward matches the float64 reference",
        math="f(x) == the float64 reference +- (F + F_64)",
        check=_log_softmax.matches_reference,
        build=_plain(_cases.half_range_logits_case),
        kinds=LOG_SOFTMAX,
    ),
    Invariant(
        "deterministic",
        needs_backward=False,
        summary="the same input gives the same output",
        math="f(x) == f(x) +- 2F, B(g) == B(g) +- 2 tau",
        check=_determinism.log_softmax_deterministic,
        build=_plain(_cases.half_range_forward_case),
        kinds=LOG_SOFTMAX,
    ),
    Invariant(
        "ones_upstream_gives_zero",
        needs_backward=True,
        summary="an all-equal upstream has zero gradient",
        math="B(c 1) == 0 +- tau",
        check=_backward.ones_upstream_gives_zero,
        build=_plain(_cases.ones_case),
    ),
    Invariant(
        "gradient_rows_sum_to_zero",
        needs_backward=True,
        summary="gradient rows sum to zero",
        math="sum_i B(g)_i == 0 +- (sum_i tau_i + dot rounding)",
        check=_gradient_sums.softmax_gradient_rows_sum_to_zero,
        build=_plain(_moderate_cases),
    ),
    Invariant(
        "gradient_rows_sum_to_zero",
        needs_backward=True,
        summary="gradient rows sum to zero",
        math="sum_i B(g)_i == 0 +- (sum_i tau_i + dot rounding)",
        check=_gradient_sums.log_softmax_gradient_rows_sum_to_zero,
        build=_plain(_moderate_cases),
        kinds=LOG_SOFTMAX,
    ),
    Invariant(
        "central_differences",
        needs_backward=True,
        summary="the backward is the forward's derivative, every entry",
        math="B(g) == central differences of <g, f(x)> +- (truncation + rounding/h + tau)",
        check=_backward.central_differences,
        build=_plain(_fd_cases),
    ),
    Invariant(
        "central_differences",
        needs_backward=True,
        summary="the backward is the forward's derivative, every entry",
        math="B(g) == central differences of <g, f(x)> +- (truncation + rounding/h + tau)",
        check=_log_backward.central_differences,
        build=_plain(_fd_cases),
        kinds=LOG_SOFTMAX,
    ),
    Invariant(
        "jacobian_symmetry",
        needs_backward=True,
        summary="the Jacobian is symmetric",
        math="<u, B(v)> == <v, B(u)> +- (<|u|, tau(v)> + <|v|, tau(u)> + dot rounding)",
        check=_backward.jacobian_symmetry,
        build=_plain(_cases.pair_case),
    ),
    Invariant(
        "jacobian_psd",
        needs_backward=True,
        summary="the Jacobian is positive semi-definite",
        math="<v, B(v)> >= -(<|v|, tau(v)> + dot rounding)",
        check=_backward.jacobian_psd,
        build=_plain(_moderate_cases),
    ),
    Invariant(
        "linearity_in_upstream",
        needs_backward=True,
        summary="the backward is linear in its upstream",
        math="B(a u + b v) == a B(u) + b B(v) +- (tau(w) + |a| tau(u) + |b| tau(v) + |J^T d|)",
        check=_backward.linearity_in_upstream,
        build=_plain(_cases.pair_case),
    ),
    Invariant(
        "linearity_in_upstream",
        needs_backward=True,
        summary="the backward is linear in its upstream",
        math="B(a u + b v) == a B(u) + b B(v) +- (tau(w) + |a| tau(u) + |b| tau(v) + |J^T d|)",
        check=_log_backward.linearity_in_upstream,
        build=_plain(_cases.pair_case),
        kinds=LOG_SOFTMAX,
    ),
    Invariant(
        "backward_matches_reference",
        needs_backward=True,
        summary="the backward matches the float64 reference VJP",
        math="B(g) == y (g - <g, y>) +- (tau + tau_64)",
        check=_backward.backward_matches_reference,
        build=_plain(_forward_cases),
    ),
    Invariant(
        "backward_matches_reference",
        needs_backward=True,
        summary="the backward matches the float64 reference VJP",
        math="B(g) == g - y sum(g) +- (tau + tau_64)",
        check=_log_backward.backward_matches_reference,
        build=_plain(_moderate_cases),
        kinds=LOG_SOFTMAX,
    ),
    Invariant(
        "stage_gradients",
        needs_backward=True,
        summary="names the first wrong intermediate gradient",
        math="each stage == its formula +- gamma(D + 5) |formula|",
        check=_stages.stage_gradients,
        build=_plain(_cases.stage_case),
    ),
    Invariant(
        "masked_entries_exactly_zero",
        needs_backward=False,
        summary="-inf entries get exactly zero probability and gradient",
        math="y_i == dx_i == 0 where x_i == -inf (exact)",
        check=_masked.masked_entries_exactly_zero,
        build=_plain(_cases.masked_case),
        masked_only=True,
    ),
    Invariant(
        "masked_rows_match_subset",
        needs_backward=False,
        summary="unmasked entries are the softmax (and VJP) of that subset",
        math="f(x)_U == softmax(x_U) +- F at length |U|",
        check=_masked.masked_rows_match_subset,
        build=_plain(_cases.masked_case),
        masked_only=True,
    ),
    Invariant(
        "fully_masked_rows",
        needs_backward=False,
        summary="an all -inf row gives all 0 or all NaN",
        math="y all 0 or all NaN, dx entries 0 or NaN (exact)",
        check=_masked.fully_masked_rows,
        build=_plain(_cases.masked_case),
        masked_only=True,
    ),
    Invariant(
        "masked_entries_exactly_zero",
        needs_backward=False,
        summary="-inf entries get exactly -inf and zero gradient",
        math="f(x)_i == -inf, dx_i == 0 where x_i == -inf and g_i == 0 (exact)",
        check=_log_masked.masked_entries_exactly_zero,
        build=_plain(_cases.masked_log_case),
        kinds=LOG_SOFTMAX,
        masked_only=True,
    ),
    Invariant(
        "masked_rows_match_subset",
        needs_backward=False,
        summary="unmasked entries are the log_softmax (and VJP) of that subset",
        math="f(x)_U == log_softmax(x_U) +- F at length |U|",
        check=_log_masked.masked_rows_match_subset,
        build=_plain(_cases.masked_log_case),
        kinds=LOG_SOFTMAX,
        masked_only=True,
    ),
    Invariant(
        "fully_masked_rows",
        needs_backward=False,
        summary="an all -inf row gives all -inf or all NaN",
        math="f(x) all -inf or all NaN, dx entries 0 or NaN (exact)",
        check=_log_masked.fully_masked_rows,
        build=_plain(_cases.masked_log_case),
        kinds=LOG_SOFTMAX,
        masked_only=True,
    ),
)


#: The cross_entropy kind: a loss of logits and labels, and its gradient (``_loss_*``).
CROSS_ENTROPY_REGISTRY: tuple[Invariant[Any], ...] = (
    Invariant(
        "finite_for_finite_input",
        needs_backward=False,
        summary="finite logits give a finite loss and dx",
        math="exact, for |x| <= max/2 (a reduced loss: where sum_i l_i <= max/4)",
        check=_loss_forward.finite_for_finite_input,
        build=_loss_cases.loss_case,
        kinds=CROSS_ENTROPY,
    ),
    Invariant(
        "loss_nonnegative",
        needs_backward=False,
        summary="the loss is never negative",
        math="L >= -A(l = 0)",
        check=_loss_forward.loss_nonnegative,
        build=_loss_cases.loss_case,
        kinds=CROSS_ENTROPY,
    ),
    Invariant(
        "matches_reference",
        needs_backward=False,
        summary="the loss matches the float64 reference",
        math="L == the float64 reference +- (A + A_64)",
        check=_loss_forward.matches_reference,
        build=_loss_cases.loss_case,
        kinds=CROSS_ENTROPY,
    ),
    Invariant(
        "dtype_preserved",
        needs_backward=False,
        summary="the loss and dx keep the logits' dtype",
        math="L.dtype == dx.dtype == x.dtype (exact)",
        check=_loss_forward.dtype_preserved,
        build=_loss_cases.loss_case,
        kinds=CROSS_ENTROPY,
    ),
    Invariant(
        "input_not_mutated",
        needs_backward=False,
        summary="x, the labels, the upstream and the cache are not written to",
        math="exact",
        check=_loss_forward.input_not_mutated,
        build=_loss_cases.loss_case,
        kinds=CROSS_ENTROPY,
    ),
    Invariant(
        "shift_invariance",
        needs_backward=False,
        summary="adding a constant to a row changes neither the loss nor dx",
        math="L(x + c) == L(x) +- (A(x) + A(x + c) + 2 w sum_i S |d_i|), dx likewise +- "
        "(tau(x) + tau(x + c) + |c| S p (exp(2|d|) - 1))",
        check=_loss_forward.shift_invariance,
        build=_loss_cases.shift_loss_case,
        kinds=CROSS_ENTROPY,
    ),
    Invariant(
        "permutation_equivariance",
        needs_backward=False,
        summary="permuting the classes (and relabelling) keeps the loss, permutes dx",
        math="L(x[:, p], y relabelled) == L(x, y) +- 2A, dx(...) == dx[:, p] +- 2 tau",
        check=_loss_forward.permutation_equivariance,
        build=_loss_cases.permuted_loss_case,
        kinds=CROSS_ENTROPY,
    ),
    Invariant(
        "sample_permutation",
        needs_backward=False,
        summary="permuting the rows (with their labels) keeps the loss, permutes dx",
        math="L(x[r], y[r]) == L(x, y) +- 2A, dx(...) == dx[r] +- 2 tau",
        check=_loss_forward.sample_permutation,
        build=_loss_cases.permuted_loss_case,
        kinds=CROSS_ENTROPY,
    ),
    Invariant(
        "batch_consistency",
        needs_backward=False,
        summary="the batch's loss is the mean (or sum) of its rows' losses alone",
        math="L(x) == w sum_i L(x[i]) +- (A + w sum_i A_i + gamma_64(2) w sum_i |L(x[i])|)",
        check=_loss_forward.batch_consistency,
        build=_loss_cases.loss_case,
        kinds=CROSS_ENTROPY,
    ),
    Invariant(
        "deterministic",
        needs_backward=False,
        summary="the same input gives the same loss and dx",
        math="L == L +- 2A, dx == dx +- 2 tau",
        check=_loss_forward.deterministic_loss,
        build=_loss_cases.loss_case,
        kinds=CROSS_ENTROPY,
    ),
    Invariant(
        "onehot_index_agree",
        needs_backward=False,
        summary="one-hot rows and class indices give the same loss and dx",
        math="L(x, onehot(y)) == L(x, y) +- 2A, dx likewise +- 2 tau",
        check=_loss_forward.onehot_index_agree,
        build=_loss_cases.loss_case,
        kinds=CROSS_ENTROPY,
    ),
    Invariant(
        "backward_matches_reference",
        needs_backward=True,
        summary="dx matches the float64 gradient of the declared reduction",
        math="dx == c (S p - q) +- (tau + tau_64)",
        check=_loss_gradient.backward_matches_reference,
        build=_loss_cases.loss_case,
        kinds=CROSS_ENTROPY,
    ),
    Invariant(
        "gradient_rows_sum_to_zero",
        needs_backward=True,
        summary="gradient rows sum to zero",
        math="sum_j dx_j == 0 +- (sum_j tau_j + dot rounding)",
        check=_loss_gradient.gradient_rows_sum_to_zero,
        build=_loss_cases.loss_case,
        kinds=CROSS_ENTROPY,
    ),
    Invariant(
        "central_differences",
        needs_backward=True,
        summary="dx is the loss's derivative, entry by entry",
        math="dx_ij == c_i (l(x_i + h e_j) - l(x_i - h e_j)) / 2h +- (truncation + rounding/h"
        " + tau)",
        check=_loss_gradient.central_differences,
        build=_loss_cases.fd_loss_case,
        kinds=CROSS_ENTROPY,
    ),
    Invariant(
        "linearity_in_upstream",
        needs_backward=True,
        summary="the gradient is linear in its upstream",
        math="B(a g + b g') == a B(g) + b B(g') +- (tau(w) + |a| tau(g) + |b| tau(g') + |d| "
        "|dx(1)|)",
        check=_loss_gradient.linearity_in_upstream,
        build=_loss_cases.pair_loss_case,
        kinds=CROSS_ENTROPY,
    ),
)

#: Every entry of every kind, in report order.
REGISTRY: tuple[Invariant[Any], ...] = (*SOFTMAX_REGISTRY, *CROSS_ENTROPY_REGISTRY)


def invariants_for(kind: str = "softmax", *, masked: bool = False) -> tuple[Invariant[Any], ...]:
    """The invariants that apply to ``kind``, in report order; with ``masked``, also
    those checked only on rows with masked (-inf) entries."""
    resolved = check_kind(kind)
    return tuple(
        inv for inv in REGISTRY if resolved in inv.kinds and (masked or not inv.masked_only)
    )


#: The softmax set (the default kind, without masked rows).
INVARIANTS: tuple[Invariant[Any], ...] = invariants_for("softmax")

INVARIANT_IDS: tuple[str, ...] = tuple(inv.id for inv in INVARIANTS)

#: Every id of every kind, in report order (what ``--invariant`` accepts).
ALL_IDS: tuple[str, ...] = tuple(dict.fromkeys(inv.id for inv in REGISTRY))


def get_invariant(
    invariant_id: str, kind: str = "softmax", *, masked: bool = True
) -> Invariant[Any]:
    """The invariant with this id for ``kind``; ValueError listing that kind's ids if none."""
    candidates = invariants_for(kind, masked=masked)
    for inv in candidates:
        if inv.id == invariant_id:
            return inv
    ids = ", ".join(inv.id for inv in candidates)
    raise ValueError(f"invariant must be one of {ids} (for kind {kind!r}); got {invariant_id!r}")


#: Each softmax entry's summary by id (kept for compatibility; Invariant.summary is the source).
SUMMARIES: dict[str, str] = {inv.id: inv.summary for inv in REGISTRY if "softmax" in inv.kinds}
