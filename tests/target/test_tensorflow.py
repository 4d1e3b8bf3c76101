"""TensorFlow and keras 3: their softmax named directly, and code written with their ops,
right and wrong, its backward from tf.GradientTape (or the backend keras runs on)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import check_json, require, statuses

from softmax_verify import verify
from softmax_verify.core.options import Options
from softmax_verify.target.autodiff import detect

ROOT = Path(__file__).resolve().parents[2]
#: Few examples: the invariants are tested elsewhere; here the reading and the verdicts are.
QUICK = ("--max-examples", "10", "--seed", "5")
#: What the backward of a correct softmax must hold, each at both dtypes.
BACKWARD = ("ones_upstream_gives_zero", "central_differences", "backward_matches_reference")


def _tf() -> Any:
    require("tensorflow")
    import tf_targets

    return tf_targets


def _keras() -> Any:
    require("keras")
    import keras_targets

    return keras_targets


def _all_passed(doc: dict[str, Any]) -> None:
    """Every invariant held; only stage_gradients is skipped (no named stages)."""
    for (invariant, dtype), status in statuses(doc).items():
        expected = "skipped" if invariant == "stage_gradients" else "passed"
        assert status == expected, (invariant, dtype, doc["results"])


def test_tf_nn_softmax_and_log_softmax_named_directly_pass(
    capsys: pytest.CaptureFixture[str],
) -> None:
    require("tensorflow")
    status, doc = check_json(capsys, "tensorflow:nn.softmax", "--no-isolate", *QUICK)
    assert status == 0
    _all_passed(doc)
    assert doc["target"]["autodiff"] == (
        "tensorflow function softmax_v2; backward by tf.GradientTape"
    )
    assert "tensorflow EagerTensor (by numpy.asarray)" in doc["target"]["arrays"]
    status, doc = check_json(
        capsys, "tensorflow:math.log_softmax", "--kind", "log_softmax", "--no-isolate", *QUICK
    )
    assert status == 0
    _all_passed(doc)


def test_tensorflow_in_its_child_leaves_stderr_clean(in_repo_root: None) -> None:
    """TensorFlow's import-time log lines (oneDNN, absl, CPU features) stay off stderr."""
    require("tensorflow")
    command = [sys.executable, "-m", "softmax_verify", "check", "tensorflow:nn.softmax"]
    command += ["--dtype", "float32", "--invariant", "backward_matches_reference", *QUICK]
    done = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stderr == ""
    assert "; outputs tensorflow EagerTensor (by numpy.asarray)" in done.stdout


@pytest.mark.parametrize("name", ["tf_softmax", "custom_softmax"])
def test_correct_tf_code_passes_with_the_flag(name: str) -> None:
    report = verify(
        getattr(_tf(), name), max_examples=10, seed=5, options=Options(autodiff="tensorflow")
    )
    assert report.passed, report.to_text()
    assert report.interpretation.endswith("; backward by tf.GradientTape")


def test_tf_function_and_custom_gradient_are_recognised_without_the_flag() -> None:
    targets = _tf()
    assert detect(targets.compiled_softmax) == "tensorflow"
    assert detect(targets.custom_softmax) == "tensorflow"
    assert detect(targets.tf_softmax) is None  # a plain function of the user's module
    report = verify(targets.compiled_softmax, invariants=BACKWARD, max_examples=10, seed=5)
    assert report.passed, report.to_text()
    assert report.interpretation.startswith("tf.function compiled_softmax; ")


def test_tf_code_without_the_flag_is_a_forward_and_the_hint_names_the_flag() -> None:
    report = verify(_tf().tf_softmax, max_examples=10, seed=5)
    assert report.passed, report.to_text()
    assert {r.status for r in report.results if r.invariant in BACKWARD} == {"skipped"}
    assert report.reading is not None
    assert report.reading.notes == (
        "the forward alone is checked (no backward): it calls tensorflow; "
        "--autodiff tensorflow would also check its gradient",
    )


def test_a_wrong_custom_gradient_is_caught() -> None:
    report = verify(
        _tf().diagonal_softmax,
        invariants=["ones_upstream_gives_zero", "backward_matches_reference"],
        dtypes=("float64",),
        max_examples=10,
        seed=5,
    )
    assert [r.status for r in report.results] == ["failed", "failed"]
    assert all(r.counterexample is not None for r in report.results)


def test_a_forward_through_numpy_has_no_gradient_and_the_backward_says_why() -> None:
    report = verify(
        _tf().through_numpy,
        invariants=["matches_reference", "backward_matches_reference"],
        dtypes=("float64",),
        max_examples=5,
        options=Options(autodiff="tensorflow"),
    )
    forward, backward = report.results
    assert forward.status == "passed"
    assert backward.status == "error"
    assert "tf.GradientTape found no gradient from the output to x" in backward.message


def test_an_unshifted_tf_log_softmax_is_caught() -> None:
    report = verify(
        _tf().unshifted_log_softmax,
        kind="log_softmax",
        invariants=["finite_for_finite_input"],
        options=Options(autodiff="tensorflow"),
    )
    assert [r.status for r in report.results] == ["failed", "failed"]
    assert all(r.counterexample is not None for r in report.results)


def test_keras_ops_softmax_named_directly_passes(capsys: pytest.CaptureFixture[str]) -> None:
    require("keras")
    status, doc = check_json(capsys, "keras.ops:softmax", "--no-isolate", *QUICK)
    assert status == 0
    _all_passed(doc)
    assert doc["target"]["autodiff"] == (
        "keras function softmax on keras's tensorflow backend; backward by tf.GradientTape"
    )


def test_keras_code_of_the_users_right_and_wrong() -> None:
    targets = _keras()
    right = verify(
        targets.keras_softmax, max_examples=10, seed=5, options=Options(autodiff="tensorflow")
    )
    assert right.passed, right.to_text()
    wrong = verify(
        targets.unshifted_softmax,
        invariants=["finite_for_finite_input"],
        dtypes=("float32",),
        options=Options(autodiff="tensorflow"),
    )
    (result,) = wrong.results
    assert result.status == "failed"
    assert result.counterexample is not None
    assert abs(result.counterexample["x"]).max() > 88  # exp overflows float32 beyond 88.7


def test_keras_layers_are_recognised_and_read_through_the_backend() -> None:
    targets = _keras()
    import keras

    assert detect(keras.layers.Softmax) == "keras"
    assert detect(targets.SoftmaxLayer) == "keras"  # a subclass in the user's module
    for layer in (keras.layers.Softmax, targets.SoftmaxLayer):
        report = verify(layer, dtypes=("float32",), max_examples=10, seed=5)
        assert report.passed, report.to_text()
    # A keras layer computes in its float32 dtype policy: float64 comes back float32.
    report = verify(
        targets.SoftmaxLayer, invariants=["dtype_preserved"], dtypes=("float64",), max_examples=5
    )
    (result,) = report.results
    assert result.status == "failed"
    assert result.message == "forward(x) returned float32 for x of dtype float64"


@pytest.mark.parametrize(
    ("backend", "autodiff"),
    [("jax", "backward by jax.vjp"), ("numpy", "which has no autodiff: the forward alone")],
)
def test_keras_on_its_other_backends_in_the_child(
    backend: str, autodiff: str, capsys: pytest.CaptureFixture[str], in_repo_root: None
) -> None:
    """The child inherits KERAS_BACKEND: keras's backend is the one the user's code gets."""
    require("keras")
    require("jax")  # the numpy backend imports jax too
    invariants = ["--invariant", "matches_reference", "--invariant", "backward_matches_reference"]
    env = {**os.environ, "KERAS_BACKEND": backend}
    done = subprocess.run(
        [sys.executable, "-m", "softmax_verify", "check", "keras.ops:softmax", "--dtype",
         "float64", *invariants, "--max-examples", "5", "--format", "json"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    doc = json.loads(done.stdout)
    assert f"on keras's {backend} backend" in doc["target"]["autodiff"]
    assert autodiff in doc["target"]["autodiff"]
    expected = "passed" if backend == "jax" else "skipped"
    assert statuses(doc)[("backward_matches_reference", "float64")] == expected
    assert statuses(doc)[("matches_reference", "float64")] == "passed"
