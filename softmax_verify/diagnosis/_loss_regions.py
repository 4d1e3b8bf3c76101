"""The cross_entropy kind's failure region: ``only_for_large_logits``, with the label gap.

A failing cross-entropy check whose cases may hold logits of any magnitude is re-run, under
the run's accumulation model, on logits ``s * base`` along ``_regions``' ladder of
magnitudes (``_regions._large_region``, the same rule as for softmax): it must hold at every
s up to 16, fail at the first failing rung and at every rung after it, and the threshold is
bisected between the last holding and the first failing s. The case around the logits is
fixed: three rows of five classes, labels 0, 3 and 1 (class indices, or one-hot rows in the
dtype of the failure's labels: probability rows too are judged on one-hot rows), the
failure's own scalar upstream (a constant vector for ``--reduction none``) and fixed
permutations for the permutation checks.

The region says where a loss is right for small logits and wrong beyond: a loss that
exponentiates unshifted logits (from about log(max) of the largest logit: the fix follows,
as for softmax), or takes the log of an underflowing softmax (from the label gap where p_y
underflows). Besides the largest |x| the evidence gives the largest label gap,
:math:`\\max_i (\\max_j x_{ij} - x_{iy_i})`, at the threshold: the gap is what a
log-of-softmax loss fails on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from softmax_verify.core.loss_implementation import LossImplementation
from softmax_verify.core.options import Accumulation
from softmax_verify.diagnosis._regions import Hit, Runner, ladder_base, large_region, merge
from softmax_verify.invariants import Case, get_invariant

if TYPE_CHECKING:
    from softmax_verify.core.result import Result

__all__ = ["loss_region_findings"]

#: The checks whose cases hold logits up to half the dtype's max (``loss_case``,
#: ``permuted_loss_case``); shift_invariance (|x| <= 1e4),
#: central_differences and linearity_in_upstream (moderate logits) are not re-run.
ANY_MAGNITUDE = frozenset(
    {
        "finite_for_finite_input",
        "loss_nonnegative",
        "matches_reference",
        "dtype_preserved",
        "backward_matches_reference",
        "gradient_rows_sum_to_zero",
        "permutation_equivariance",
        "sample_permutation",
        "batch_consistency",
    }
)
#: The ladder's top, as a share of the dtype's max: a row of the ladder's logits (max |x| =
#: s, so a spread of at most 2s) has an exact loss of at most 2s + ln 5, and three rows sum
#: to at most 6s + 3 ln 5 <= max/4 for s <= max/32, where a reduced loss must stay finite
#: (``finite_reduction``): beyond it the loss checks require nothing of a reduced loss, and
#: a failure would seem to stop.
TOP_SHARE = 1 / 32
#: The fixed labels of the probe rows (class indices).
LABELS = np.array([0, 3, 1], dtype=np.int64)


def _builder(template: Case) -> Any:
    """A maker of (3, 5) cases like ``template`` (``_regions``' builder interface); the
    logits are replaced by the ladder."""
    labels, g = template["labels"], np.asarray(template["g"])
    dtype = template["x"].dtype

    def build(shape: tuple[int, int], rng: np.random.Generator) -> Case:
        n, c = shape
        ys = LABELS[:n] % c
        rows = np.zeros((n, c), dtype=labels.dtype)
        rows[np.arange(n), ys] = 1
        case: Case = {
            "x": rng.normal(0.0, 2.0, shape).astype(dtype),
            "labels": ys if labels.ndim == 1 else rows,
            "g": g.copy() if g.ndim == 0 else np.full(n, g.flat[0], dtype=g.dtype),
        }
        for key in template.keys() & {"perm", "rows"}:
            case[key] = rng.permutation(c if key == "perm" else n)
        return case

    return build


def label_gap(x: NDArray[Any], labels: NDArray[Any]) -> float:
    """The largest gap :math:`\\max_j x_{ij} - x_{iy_i}` of the rows' labels (one-hot rows:
    their class)."""
    wide = np.asarray(x, dtype=np.float64)
    ys = labels if labels.ndim == 1 else labels.argmax(axis=1)
    return float((wide.max(axis=1) - wide[np.arange(len(ys)), ys]).max())


def _with_gap(hit: Hit, template: Case) -> Hit:
    """The hit's evidence with the label gap of the ladder's rows at its threshold."""
    assert hit.param is not None
    gap = label_gap(ladder_base() * hit.param, template["labels"])
    evidence = (
        f"{hit.evidence}; at that magnitude the largest label gap (row maximum minus the "
        f"label's logit) is {gap:.7g}"
    )
    return replace(hit, evidence=evidence)


def loss_region_findings(
    impl: LossImplementation,
    results: Sequence[Result],
    deadline: float,
    *,
    accumulate: Accumulation = "float32",
) -> list[tuple[str, str, str, str]]:
    """The regions of the failures in ``results`` (``_regions.merge``'s tuples: id,
    summary, evidence, fix): ``only_for_large_logits`` for each failed check of
    ``ANY_MAGNITUDE`` that holds for small logits and fails beyond a magnitude."""
    hits: list[Hit] = []
    for r in results:
        if r.status != "failed" or r.counterexample is None or r.invariant not in ANY_MAGNITUDE:
            continue
        if not {"x", "labels", "g"} <= r.counterexample.keys():
            continue
        run = Runner(impl, get_invariant(r.invariant, "cross_entropy"), deadline, accumulate)
        build = _builder(r.counterexample)
        hit = large_region(run, build, r.dtype, share=TOP_SHARE)
        if hit is not None:
            template = build((3, 5), np.random.default_rng(0))
            hits.append(_with_gap(hit, template))
    return merge(hits)
