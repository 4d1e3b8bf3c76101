"""``softmax-verify check`` on code in the shapes people write it (tests/styles.py).

Layer classes and instances as TARGET, the reading options reaching the isolated
child, the reading stated in the report, and one exit-2 line for code that fits no
convention.
"""

from __future__ import annotations

import json
import sys

import pytest
from conftest import cli

STYLES = "tests/styles.py"

pytestmark = pytest.mark.usefixtures("in_repo_root")


def test_layer_class_target_passes_and_the_report_says_how_it_was_read(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = cli(capsys, "check", f"{STYLES}:StoringSoftmax", "--max-examples", "15")
    assert code == 0, out + err
    assert out.splitlines()[1] == (
        "read as: class, fresh instance per forward call; forward "
        ".forward(x) -> .output; backward .backward(dout) -> .dinputs; grad vjp; axis -1"
    )
    assert "FAILED" not in out
    assert "ERROR" not in out


def test_module_level_instance_with_fprop_bprop(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(
        capsys, "check", f"{STYLES}:fprop_instance", "--max-examples", "10", "--no-isolate"
    )
    assert code == 0, out + err
    assert "instance, deep copy per forward call; forward .fprop(x) -> y" in out


def test_wrong_layer_fails_on_its_bug_with_the_reading_in_json(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = cli(
        capsys,
        "check",
        f"{STYLES}:StoringDiagonalSoftmax",
        "--invariant",
        "ones_upstream_gives_zero",
        "--max-examples",
        "20",
        "--format",
        "json",
    )
    assert code == 1
    doc = json.loads(out)
    assert doc["results"][0]["status"] == "failed"
    target = doc["target"]
    assert target["name"] == f"{STYLES}:StoringDiagonalSoftmax"
    assert target["kind"] == "class, fresh instance per forward call"
    assert target["backward"] == ".backward(dout) -> .dinputs"
    assert target["grad"] == "vjp"


def test_reading_options_reach_the_isolated_child(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(
        capsys,
        "check",
        f"{STYLES}:softmax_1d",
        "--backward",
        f"{STYLES}:softmax_1d_backward",
        "--rowwise",
        "--max-examples",
        "10",
    )
    assert code == 0, out + err
    assert "rowwise: one call per 1-D row" in out
    code, out, _ = cli(
        capsys, "check", f"{STYLES}:AttentionWrongAxis", "--rank", "4", "--invariant",
        "row_independence", "--max-examples", "30",
    )  # fmt: skip
    assert code == 1
    assert "reproduce: softmax-verify check tests/styles.py:AttentionWrongAxis" in out
    assert out.rstrip().endswith("--rank 4")


def test_elementwise_and_jacobian_options(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(
        capsys, "check", f"{STYLES}:softmax_rows", "--backward", f"{STYLES}:softmax_derivative",
        "--grad", "elementwise", "--grad-at", "y", "--invariant", "central_differences",
        "--max-examples", "20",
    )  # fmt: skip
    assert code == 1
    assert "backward softmax_derivative(y) -> g, dx = dout * g; grad elementwise at y" in out
    assert "note: an elementwise derivative g gives dx = dout * g" in out
    code, out, err = cli(
        capsys, "check", f"{STYLES}:softmax_rows", "--backward", f"{STYLES}:softmax_grad",
        "--rowwise", "--grad", "jacobian", "--grad-at", "y", "--max-examples", "10",
    )  # fmt: skip
    assert code == 0, out + err


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (
            [f"{STYLES}:NeedsArgument"],
            "the constructor argument 'dim' has no default",
        ),
        (
            [f"{STYLES}:softmax_needs_axis"],
            "softmax_needs_axis(x, axis) cannot be called as softmax_needs_axis(x)",
        ),
        (
            [f"{STYLES}:softmax_rows", "--backward", f"{STYLES}:backward_needs_three"],
            "backward_needs_three(dout, x, y) fits no backward convention; tried",
        ),
        ([f"{STYLES}:softmax_rows", "--axis", "2"], "axis must be an int in [-2, 1]"),
        ([f"{STYLES}:softmax_rows", "--rank", "5"], "expected 2, 3 or 4, got '5'"),
    ],
)
def test_code_fitting_no_convention_is_one_usage_line(
    capsys: pytest.CaptureFixture[str], argv: list[str], says: str
) -> None:
    code, out, err = cli(capsys, "check", *argv)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("softmax-verify: error: ")
    assert says in err


# --- Class.method, near misses, the default target of each kind ----------------------------


def test_a_method_of_an_instance_built_with_no_arguments(
    capsys: pytest.CaptureFixture[str],
) -> None:
    ops = f"{STYLES}:SoftmaxOps"
    argv = ["check", f"{ops}.softmax", "--backward", f"{ops}.softmax_backward", "--no-isolate"]
    code, out, err = cli(capsys, *argv, "--max-examples", "10")
    assert code == 0, out + err
    loaded = sys.modules["softmax_verify_target_styles"]  # the file target, as loaded
    assert loaded.SoftmaxOps.built == 1  # one instance: the forward's and the backward's
    assert "note: SoftmaxOps.softmax: a method of one SoftmaxOps() built with no arguments" in out
    code, out, _ = cli(
        capsys, "check", f"{ops}.softmax", "--backward", f"{ops}.softmax_backward_diagonal",
        "--max-examples", "20", "--invariant", "ones_upstream_gives_zero",
    )  # fmt: skip
    assert code == 1
    assert "FAILED: ones_upstream_gives_zero" in out


def test_a_method_of_a_class_needing_arguments_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = cli(capsys, "check", f"{STYLES}:OpsNeedingAnArgument.softmax")
    assert code == 2
    assert out == ""
    assert "constructor argument 'axis' has no default" in err
    assert len(err.splitlines()) == 1


@pytest.mark.parametrize(
    ("target", "said"),
    [
        (f"{STYLES}:SoftmaxOp.softmax", "no attribute 'SoftmaxOp'; did you mean SoftmaxOps?"),
        (f"{STYLES}:SoftmaxOps.sofmax", "no attribute 'sofmax'; did you mean softmax?"),
        (f"{STYLES}:MisspeltLayer", "no forward method; tried forward, forward_pass, fprop, "
         "__call__; did you mean foward?"),
    ],
)  # fmt: skip
def test_a_near_miss_is_named(capsys: pytest.CaptureFixture[str], target: str, said: str) -> None:
    code, out, err = cli(capsys, "check", target)
    assert code == 2, out + err
    assert said in err
    assert len(err.splitlines()) == 1


def test_without_a_target_the_reference_of_the_kind_is_checked(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = cli(
        capsys, "check", "--kind", "log_softmax", "--max-examples", "10", "--format", "json"
    )
    assert code == 0, out + err
    report = json.loads(out)
    assert report["passed"]
    assert report["target"]["name"] == "reference"
    assert report["interpretation"] == "log_softmax"
