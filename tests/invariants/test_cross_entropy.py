"""The cross_entropy kind's invariants: each fails on code that breaks it (tests/bad_ce_impls.py,
and the wrong variant of each convention in tests/ce_styles.py), and every correct style
passes all of them, at float32 and float64, for each label form and reduction it takes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import bad_ce_impls as bad
import ce_styles as s
import numpy as np
import pytest

from softmax_verify import Options, verify
from softmax_verify.core.loss_implementation import LossImplementation
from softmax_verify.invariants import invariants_for
from softmax_verify.run.runner import run_invariant
from softmax_verify.target.conventions import loss_implementation_from
from softmax_verify.target.load import reference_loss
from softmax_verify.testing import SoftmaxContract

DTYPES = ("float32", "float64")
IDS = [inv.id for inv in invariants_for("cross_entropy")]


def _impl(target: Any, backward: Callable[..., Any] | None = None, **options: Any) -> Any:
    loss = Options(kind="cross_entropy", **options)
    impl, _ = loss_implementation_from(target, backward, loss.read, loss.loss, timeout=None)
    return impl, loss


# (invariant, target, backward, options, dtype): the invariant fails on it
FAILING: list[tuple[str, Any, Any, dict[str, Any], str]] = [
    ("finite_for_finite_input", bad.no_max_shift_loss, None, {}, "float32"),
    ("finite_for_finite_input", bad.log_of_softmax_loss, None, {}, "float64"),
    ("loss_nonnegative", bad.sign_flipped_loss, None, {}, "float64"),
    ("matches_reference", bad.clip_1e12_loss, None, {}, "float32"),
    ("matches_reference", bad.eps_in_log_loss, None, {}, "float64"),
    ("matches_reference", bad.NnfsBookSoftmaxLoss, None, {}, "float32"),
    ("dtype_preserved", bad.float64_loss, None, {}, "float32"),
    ("input_not_mutated", bad.in_place_shift_loss, None, {}, "float64"),
    ("input_not_mutated", s.InPlaceCrossEntropy, None, {}, "float64"),
    ("shift_invariance", bad.logit_penalty_loss, None, {}, "float64"),
    ("permutation_equivariance", bad.first_class_bias_loss, None, {}, "float64"),
    ("sample_permutation", bad.position_weighted_loss, None, {}, "float64"),
    ("batch_consistency", bad.label_indexing_loss, None, {}, "float64"),
    ("batch_consistency", bad.label_indexing_sum_loss, None, {}, "float32"),
    ("deterministic", bad.noisy_loss, None, {}, "float64"),
    ("onehot_index_agree", bad.onehot_forgets_mean_loss, None, {}, "float64"),
    ("backward_matches_reference", bad.forgot_onehot_loss, None, {}, "float32"),
    ("backward_matches_reference", bad.averaged_sum_loss, None, {"reduction": "sum"}, "float64"),
    ("backward_matches_reference", s.ClassCountCrossEntropy, None, {}, "float64"),
    ("backward_matches_reference", s.lse_loss, s.lse_grad_without_onehot, {}, "float32"),
    ("backward_matches_reference", s.sequence_loss_per_sequence_mean, None, {"rank": 3}, "float64"),
    ("gradient_rows_sum_to_zero", bad.forgot_onehot_loss, None, {}, "float64"),
    ("central_differences", bad.not_averaged_loss, None, {}, "float32"),
    ("central_differences", bad.sign_flipped_loss, None, {}, "float64"),
    ("linearity_in_upstream", s.UpstreamIgnoringCrossEntropy, None, {}, "float64"),
    ("linearity_in_upstream", bad.cross_entropy, bad.squared_upstream_backward, {}, "float32"),
    ("loss_nonnegative", s.SoftmaxClassifier().flipped_loss, None, {}, "float32"),
]


@pytest.mark.parametrize(
    ("invariant", "target", "backward", "options", "dtype"),
    FAILING,
    ids=[f"{case[0]}-{getattr(case[1], '__name__', type(case[1]).__name__)}" for case in FAILING],
)
def test_each_invariant_fails_on_code_that_breaks_it(
    invariant: str, target: Any, backward: Any, options: dict[str, Any], dtype: str
) -> None:
    impl, chosen = _impl(target, backward, **options)
    result = run_invariant(invariant, impl, dtype, kind="cross_entropy", loss=chosen.loss)
    assert result.status == "failed", (result.status, result.message)


def test_every_invariant_has_a_failing_case() -> None:
    assert {case[0] for case in FAILING} == set(IDS)


# (target, backward, options): correct code in every convention
CORRECT: list[tuple[Any, Any, dict[str, Any]]] = [
    (s.softmax_loss, None, {}),
    (s.softmax_loss, None, {"labels": "onehot"}),
    (s.softmax_loss, None, {"labels": "probs"}),
    (s.lse_loss, s.lse_grad, {}),
    (s.SoftmaxCrossEntropy, None, {"labels": "probs"}),
    (s.CrossEntropyWithProbs, None, {}),
    (s.StoredCrossEntropy, None, {"labels": "onehot"}),
    (s.Activation_Softmax_Loss_CategoricalCrossentropy, None, {}),
    (s.SoftmaxClassifier().loss, None, {}),
    (s.RowLosses, None, {"reduction": "none"}),
    (s.sum_loss, None, {"reduction": "sum"}),
    (s.sequence_loss, None, {"rank": 3}),
    (s.sequential_lse_loss, s.sequential_grad, {}),
    (*reference_loss(Options(kind="cross_entropy", reduction="none").loss), {"reduction": "none"}),
]


@pytest.mark.parametrize(
    ("target", "backward", "options"),
    CORRECT,
    ids=[f"{getattr(c[0], '__qualname__', '?')}-{c[2]}" for c in CORRECT],
)
def test_correct_code_in_every_convention_passes(
    target: Any, backward: Any, options: dict[str, Any]
) -> None:
    report = verify(
        target,
        backward,
        options=Options(kind="cross_entropy", dtypes=DTYPES, max_examples=30, **options),
    )
    failed = [(r.invariant, r.dtype, r.message) for r in report.results if r.status != "passed"]
    skipped_ok = {("linearity_in_upstream", "skipped"), ("onehot_index_agree", "skipped")}
    assert all((inv, "skipped") in skipped_ok for inv, _, _ in failed), failed


def test_a_skipped_invariant_says_why() -> None:
    impl, chosen = _impl(s.softmax_loss)
    result = run_invariant("linearity_in_upstream", impl, "float64", kind="cross_entropy")
    assert result.status == "skipped"
    assert "takes no upstream" in result.message
    probs, chosen = _impl(s.softmax_loss, labels="probs")
    result = run_invariant(
        "onehot_index_agree", probs, "float64", kind="cross_entropy", loss=chosen.loss
    )
    assert result.status == "skipped"
    assert "probability rows" in result.message


def test_a_target_without_the_other_label_form_is_not_judged_on_it() -> None:
    impl, _ = _impl(s.RowLosses, reduction="none")
    loss = Options(kind="cross_entropy", reduction="none").loss
    result = run_invariant("onehot_index_agree", impl, "float64", kind="cross_entropy", loss=loss)
    assert result.status == "skipped"
    assert "does not take one-hot rows" in result.message


def test_the_rows_of_a_per_row_loss_are_compared_row_by_row() -> None:
    """A per-row loss under --reduction mean: its rows against the reference's rows, its dx
    against the mean's gradient."""

    def rows_and_mean_gradient(x: Any, y: Any) -> Any:
        _, dx = s.softmax_loss(x, y)
        shifted = x - x.max(axis=1, keepdims=True)
        rows = np.log(np.exp(shifted).sum(axis=1)) - shifted[np.arange(len(y)), y]
        return rows, dx

    impl: LossImplementation
    impl, _ = _impl(rows_and_mean_gradient)
    for inv in ("matches_reference", "backward_matches_reference", "batch_consistency"):
        result = run_invariant(inv, impl, "float64", kind="cross_entropy", max_examples=40)
        assert result.status == "passed", (inv, result.message)


def _contract(forward: Any, **attributes: Any) -> type[SoftmaxContract]:
    # Built inside a function so that pytest does not collect it as a test class here.
    class Contract(SoftmaxContract):
        kind = "cross_entropy"

    Contract.forward = (
        staticmethod(forward) if callable(forward) and not isinstance(forward, type) else forward
    )
    for name, value in attributes.items():
        setattr(Contract, name, value)
    return Contract


def test_a_contract_of_the_kind_collects_its_invariants_and_judges_the_code() -> None:
    contract = _contract(s.softmax_loss)
    collected = [n for n in dir(contract) if n.startswith("test_") and getattr(contract, n)]
    assert sorted(collected) == sorted(f"test_{i}" for i in IDS)
    contract().test_backward_matches_reference("float64")  # type: ignore[attr-defined]  # generated
    layer = _contract(s.SoftmaxCrossEntropy, labels="probs")
    assert layer.options().loss.labels == "probs"
    layer().test_matches_reference("float32")  # type: ignore[attr-defined]  # generated
    wrong = _contract(bad.not_averaged_loss)
    with pytest.raises(pytest.fail.Exception, match="backward_matches_reference"):
        wrong().test_backward_matches_reference("float64")  # type: ignore[attr-defined]  # generated
