"""mygrad and HIPS autograd: mygrad's softmax and logsoftmax named directly, and code written
with either library, right and wrong, its backward from the library's autodiff; the
known behaviours of both reported as failures with their counterexamples."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from conftest import check_json, require, statuses

from softmax_verify import verify
from softmax_verify.bundled.reference import log_softmax
from softmax_verify.core.options import Options
from softmax_verify.target.autodiff import detect

QUICK = ("--max-examples", "10", "--seed", "5")
BACKWARD = ("ones_upstream_gives_zero", "central_differences", "backward_matches_reference")


def _mygrad() -> Any:
    require("mygrad")
    import mygrad_targets

    return mygrad_targets


def _autograd() -> Any:
    require("autograd")
    require("scipy")  # autograd.scipy.special wraps scipy's logsumexp
    import autograd_targets

    return autograd_targets


def test_mygrad_softmax_named_directly_passes(capsys: pytest.CaptureFixture[str]) -> None:
    require("mygrad")
    status, doc = check_json(capsys, "mygrad.nnet:softmax", "--no-isolate", *QUICK)
    assert status == 0
    for (invariant, _), result in statuses(doc).items():
        assert result == ("skipped" if invariant == "stage_gradients" else "passed"), invariant
    assert doc["target"]["autodiff"] == (
        "mygrad function softmax; backward by mygrad's Tensor.backward"
    )
    assert "mygrad Tensor (by numpy.asarray)" in doc["target"]["arrays"]


def test_mygrad_logsoftmax_cancels_and_is_reported_with_its_counterexample(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """mygrad's logsoftmax is x - logsumexp(x): for large equal entries the rounded
    logsumexp swallows log(D). Its gradient recomputes a shifted softmax and is right."""
    require("mygrad")
    import mygrad as mg

    invariants = [
        "--invariant",
        "matches_reference",
        *("--invariant", "backward_matches_reference"),
    ]
    status, doc = check_json(
        capsys, "mygrad.nnet:logsoftmax", "--kind", "log_softmax", "--no-isolate", *invariants
    )
    assert status == 1
    found = statuses(doc)
    assert found[("matches_reference", "float32")] == "failed"
    assert found[("matches_reference", "float64")] == "failed"
    assert found[("backward_matches_reference", "float32")] == "passed"
    assert found[("backward_matches_reference", "float64")] == "passed"
    for result in doc["results"]:
        if result["status"] == "failed":
            x = np.array(result["counterexample"]["x"], dtype=result["dtype"])
            error = np.abs(mg.nnet.logsoftmax(x).data - log_softmax(x.astype(np.float64))).max()
            # the counterexample shows the bug: a correctly rounded result is within eps/2
            assert error > 10 * np.finfo(x.dtype).eps


def test_mygrad_code_of_the_users_right_and_wrong() -> None:
    targets = _mygrad()
    assert detect(targets.mygrad_softmax) is None  # the user's module: read with the flag
    right = verify(
        targets.mygrad_softmax, max_examples=10, seed=5, options=Options(autodiff="mygrad")
    )
    assert right.passed, right.to_text()
    wrong = verify(
        targets.batch_softmax,
        invariants=["rows_sum_to_one", "row_independence"],
        dtypes=("float64",),
        options=Options(autodiff="mygrad"),
    )
    assert [r.status for r in wrong.results] == ["failed", "failed"]


def test_mygrad_code_without_the_flag_is_a_forward_that_locks_nothing() -> None:
    """A mygrad op makes its numpy input read-only while its graph lives: the forward alone
    is checked, and the verifier's arrays stay writable (input_not_mutated holds)."""
    report = verify(_mygrad().mygrad_softmax, max_examples=10, seed=5)
    assert report.passed, report.to_text()
    assert report.reading is not None
    assert report.reading.notes == (
        "the forward alone is checked (no backward): it calls mygrad; "
        "--autodiff mygrad would also check its gradient",
    )


def test_autograd_softmax_is_right_but_its_float32_gradient_is_float64() -> None:
    """autograd's VJP of anp.max divides by an int64 count (grad_chooser): dx is float64
    for a float32 x. Every other invariant holds, at both dtypes."""
    report = verify(_autograd().autograd_softmax, options=Options(autodiff="autograd"))
    failed = [(r.invariant, r.dtype) for r in report.failures]
    assert failed == [("dtype_preserved", "float32")], report.to_text()
    (result,) = report.failures
    assert result.message == "backward returned dx of dtype float64 for dout of dtype float32"
    assert result.counterexample is not None
    assert [d.id for d in report.diagnosis if d.kind == "formula"] == ["dtype_changed"]


def test_autograd_log_softmax_of_its_examples_cancels() -> None:
    """x - logsumexp(x), autograd's examples' log_softmax: the same cancellation as mygrad's."""
    report = verify(
        _autograd().autograd_log_softmax,
        kind="log_softmax",
        invariants=["matches_reference"],
        options=Options(autodiff="autograd"),
    )
    assert [r.status for r in report.results] == ["failed", "failed"]
    for result in report.results:
        assert result.counterexample is not None
        x = result.counterexample["x"]
        assert np.abs(x).max() >= 16  # large logits: the rounded logsumexp swallows log(D)


def test_autograd_wrong_code_and_the_hint_without_the_flag() -> None:
    targets = _autograd()
    wrong = verify(
        targets.unshifted_softmax,
        invariants=["finite_for_finite_input"],
        dtypes=("float64",),
        options=Options(autodiff="autograd"),
    )
    assert wrong.results[0].status == "failed"
    forward_only = verify(targets.autograd_log_softmax, kind="log_softmax", max_examples=5)
    assert forward_only.reading is not None
    assert forward_only.reading.notes == (
        "the forward alone is checked (no backward): it calls autograd; "
        "--autodiff autograd would also check its gradient",
    )


def test_autograd_primitives_are_recognised() -> None:
    require("autograd")
    import autograd.numpy as anp

    assert detect(anp.exp) == "autograd"  # marked _is_autograd_primitive, in autograd.tracer
