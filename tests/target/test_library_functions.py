"""Libraries' own softmax named directly, as their users name it: scikit-learn's, thinc's
NumpyOps with its own backprop (its parameters say the order), and jax.nn.softmax without
a flag; with targets of their style, right and wrong."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from conftest import check_json, require, statuses

from softmax_verify import verify
from softmax_verify.core.options import Options
from softmax_verify.target.load import TargetSpec

QUICK = ("--max-examples", "10", "--seed", "5")
BACKWARD = ("ones_upstream_gives_zero", "central_differences", "backward_matches_reference")


def _every_forward_invariant_passed(doc: dict[str, Any]) -> None:
    for (invariant, dtype), status in statuses(doc).items():
        if status != "skipped":
            assert status == "passed", (invariant, dtype, doc["results"])


def test_sklearn_softmax_named_directly_is_a_correct_forward(
    capsys: pytest.CaptureFixture[str],
) -> None:
    require("sklearn")
    status, doc = check_json(capsys, "sklearn.utils.extmath:softmax", "--no-isolate", *QUICK)
    assert status == 0
    _every_forward_invariant_passed(doc)
    assert statuses(doc)[("backward_matches_reference", "float64")] == "skipped"
    assert doc["target"]["forward"] == "softmax(x) -> y or (y, cache)"
    assert doc["target"]["arrays"] is None  # numpy in, numpy out
    assert doc["target"]["notes"] == []  # it calls numpy alone: no --autodiff to suggest


def test_sklearn_softmax_with_copy_false_writes_into_its_input(
    capsys: pytest.CaptureFixture[str], in_repo_root: None
) -> None:
    require("sklearn")
    status, doc = check_json(
        capsys,
        "tests/sklearn_targets.py:softmax_in_place",
        "--no-isolate",
        "--invariant",
        "input_not_mutated",
        "--dtype",
        "float64",
    )
    assert status == 1
    (result,) = doc["results"]
    assert result["status"] == "failed"
    assert result["counterexample"] is not None
    assert [d["id"] for d in doc["diagnosis"] if d["kind"] == "mutation"] == ["mutates_input"]


def test_thinc_numpy_ops_with_its_own_backprop(capsys: pytest.CaptureFixture[str]) -> None:
    """backprop_softmax(Y, dY): the output first, as its parameter names say."""
    require("thinc")
    status, doc = check_json(
        capsys,
        "thinc.api:NumpyOps.softmax",
        "--backward",
        "thinc.api:NumpyOps.backprop_softmax",
        "--no-isolate",
        *QUICK,
    )
    assert status == 0, doc["results"]
    _every_forward_invariant_passed(doc)
    assert statuses(doc)[("backward_matches_reference", "float32")] == "passed"
    assert doc["target"]["backward"] == (
        "backprop_softmax(cache, dout) -> dx, the order "
        "backprop_softmax(Y, dY, *, axis=-1, temperature=1.0) says"
    )
    assert (
        "NumpyOps.softmax: a method of one NumpyOps() built with no arguments"
        in (doc["target"]["notes"])
    )


def test_a_wrong_backprop_in_thincs_ops_style_is_caught(
    capsys: pytest.CaptureFixture[str], in_repo_root: None
) -> None:
    require("thinc")
    status, doc = check_json(
        capsys,
        "tests/thinc_targets.py:DiagonalOps.softmax",
        "--backward",
        "tests/thinc_targets.py:DiagonalOps.backprop_softmax",
        "--no-isolate",
        *[arg for invariant in BACKWARD for arg in ("--invariant", invariant)],
        "--dtype",
        "float64",
    )
    assert status == 1
    assert set(statuses(doc).values()) == {"failed"}


def test_jax_nn_softmax_without_a_flag(capsys: pytest.CaptureFixture[str]) -> None:
    """Recognised by its module: its backward is jax.vjp, and its run draws the row lengths
    compiled once each (the command line knows it from the name)."""
    require("jax")
    assert TargetSpec("jax.nn:softmax").compiled_per_shape
    assert TargetSpec("jax.nn:log_softmax").compiled_per_shape
    assert not TargetSpec("jax.nn:softmax", options=Options(autodiff="torch")).compiled_per_shape
    assert not TargetSpec("tests/jax_targets.py:good_vjp").compiled_per_shape
    invariants = [arg for invariant in BACKWARD for arg in ("--invariant", invariant)]
    status, doc = check_json(capsys, "jax.nn:softmax", "--no-isolate", *invariants, *QUICK)
    assert status == 0, doc["results"]
    _every_forward_invariant_passed(doc)
    assert doc["target"]["autodiff"].startswith("jax function softmax; backward by jax.vjp")
    assert "row lengths from a palette" in doc["domain"]
    log_invariants = ["--invariant", "central_differences", "--invariant", "matches_reference"]
    status, doc = check_json(
        capsys, "jax.nn:log_softmax", "--kind", "log_softmax", "--no-isolate", *log_invariants,
        *QUICK,
    )  # fmt: skip
    assert status == 0, doc["results"]


def test_a_library_function_object_is_recognised_by_verify() -> None:
    """verify() takes the function itself, as a notebook passes it."""
    jax = require("jax")
    report = verify(jax.nn.softmax, invariants=BACKWARD, dtypes=("float64",), max_examples=10)
    assert report.passed, report.to_text()
    assert report.interpretation.startswith("jax function softmax; backward by jax.vjp")
    y = np.asarray(jax.nn.softmax(np.zeros((1, 2))))
    np.testing.assert_array_equal(y, [[0.5, 0.5]])
