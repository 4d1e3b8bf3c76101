"""One options value: validated once, built alike by the command line, verify() and the
contract, and carried whole to the child process and the report's reproduce line."""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

import numpy as np
import pytest
from conftest import cli, require

from softmax_verify import Domain, Options, softmax, softmax_backward, verify
from softmax_verify.cli import _parser, options_argv, options_from
from softmax_verify.core.options import LossOptions
from softmax_verify.isolation.channel import ChildTarget
from softmax_verify.run.plan import RunPlan
from softmax_verify.testing import SoftmaxContract

STYLES = "tests/styles.py"
GOOD = ["tests/bad_impls.py:stable", "--backward", "tests/bad_impls.py:correct_backward"]


def parsed(*argv: str) -> Options:
    return options_from(_parser().parse_args(["check", *argv]))


# --- the value ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "error", "named"),
    [
        ({"kind": "sigmoid"}, ValueError, "kind"),
        ({"dtypes": "float32"}, TypeError, "dtypes"),
        ({"dtypes": ()}, ValueError, "dtypes"),
        ({"dtypes": ("int8",)}, TypeError, "dtypes"),
        ({"masked": "yes"}, TypeError, "masked"),
        ({"invariants": "rows_sum_to_one"}, TypeError, "invariants"),
        ({"invariants": [3]}, TypeError, "invariants"),
        ({"accumulate": "float8"}, ValueError, "accumulate"),
        ({"domain": (1, 2)}, TypeError, "domain"),
        ({"profile": 3}, TypeError, "profile"),
        ({"max_examples": 0}, ValueError, "max_examples"),
        ({"max_examples": True}, ValueError, "max_examples"),
        ({"seed": -1}, ValueError, "seed"),
        ({"timeout": 0}, ValueError, "timeout"),
        ({"timeout": math.nan}, ValueError, "timeout"),
        ({"grad": "hessian"}, ValueError, "grad"),
        ({"grad_at": "z"}, ValueError, "grad_at"),
        ({"grad": "vjp", "grad_at": "y"}, ValueError, "grad_at"),
        ({"rowwise": 1}, TypeError, "rowwise"),
        ({"axis": 2}, ValueError, "axis"),
        ({"rank": 5}, ValueError, "rank"),
        ({"autodiff": "tensorflow2"}, ValueError, "autodiff"),
        ({"device": 0}, TypeError, "device"),
        ({"kind": "cross_entropy", "labels": "soft"}, ValueError, "labels"),
        ({"kind": "cross_entropy", "reduction": "max"}, ValueError, "reduction"),
        # a field that does not apply to the kind is named, not silently ignored
        ({"labels": "probs"}, ValueError, "labels"),
        ({"kind": "log_softmax", "reduction": "sum"}, ValueError, "reduction"),
        ({"kind": "cross_entropy", "masked": True}, ValueError, "masked"),
        ({"kind": "cross_entropy", "grad": "vjp"}, ValueError, "grad"),
        ({"kind": "cross_entropy", "grad_at": "y", "grad": "jacobian"}, ValueError, "grad"),
        ({"kind": "cross_entropy", "rowwise": True}, ValueError, "rowwise"),
    ],
)
def test_each_bad_option_is_named(changes: dict[str, Any], error: type, named: str) -> None:
    with pytest.raises(error, match=rf"^{named}\b"):
        Options(**changes)


def test_options_are_stored_in_one_normal_form() -> None:
    given = Options(dtypes=[np.float64, "float32", "float64"], invariants=["a", "b", "a"])
    assert given.dtypes == ("float64", "float32")
    assert given.invariants == ("a", "b")
    assert Options(timeout=math.inf).timeout is None  # inf: no limit
    assert Options(timeout=3).timeout == 3.0
    assert Options().read.axis == -1
    assert Options(kind="cross_entropy", labels="probs", reduction="none").loss == LossOptions(
        "probs", "none"
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        Options().kind = "log_softmax"  # type: ignore[misc]  # frozen is the point


# --- the three ways in build the same value ------------------------------------------------


class _Contract(SoftmaxContract):
    forward = staticmethod(softmax)
    kind = "log_softmax"
    dtypes = ("float64",)
    masked = True
    accumulate = "input"
    domain = Domain(rows=(2, 3))
    timeout = 7.0
    axis = 1


def test_the_cli_the_contract_and_verify_build_the_same_options(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from_cli = parsed(
        "--kind", "log_softmax", "--dtype", "float64", "--masked", "--accumulate", "input",
        "--rows", "2:3", "--timeout", "7", "--axis", "1",
    )  # fmt: skip
    assert from_cli == _Contract.options()
    seen: list[Options] = []
    build = RunPlan.build

    def spy(options: Options | None = None, **kwargs: Any) -> RunPlan:
        assert options is not None
        seen.append(options)
        return build(options, **kwargs)

    monkeypatch.setattr(RunPlan, "build", spy)
    verify(
        softmax,
        kind="log_softmax",
        dtypes=("float64",),
        options=Options(masked=True, accumulate="input", timeout=7.0, axis=1),
        domain=Domain(rows=(2, 3)),
        max_examples=1,
    )
    assert seen == [from_cli.replace(max_examples=1)]


def test_keywords_override_the_options_value() -> None:
    report = verify(
        softmax,
        softmax_backward,
        options=Options(dtypes=("float32",), invariants=("rows_sum_to_one",), max_examples=3),
        dtypes=("float64",),
    )
    assert [(r.invariant, r.dtype, r.examples) for r in report.results] == [
        ("rows_sum_to_one", "float64", 3)
    ]
    with pytest.raises(TypeError, match=r"options must be a softmax_verify\.Options"):
        verify(softmax, options={"kind": "softmax"})  # type: ignore[arg-type]  # the point


# --- each flag reaches the child and the report ----------------------------------------


def _flags() -> list[Any]:
    log = ["tests/bad_log_impls.py:correct_forward"]
    cases: list[tuple[str, list[str], list[str], dict[str, Any]]] = [
        ("dtype", GOOD, ["--dtype", "float64"], {"dtypes": ("float64",)}),
        ("accumulate", GOOD, ["--dtype", "float16", "--accumulate", "input"],
         {"accumulate": "input", "dtypes": ("float16",)}),
        ("rows", GOOD, ["--rows", "2:3"], {"domain": {"rows": (2, 3)}}),
        ("cols", GOOD, ["--cols", "3:5"], {"domain": {"cols": (3, 5)}}),
        ("cols-multiple-of", GOOD, ["--cols", "2:8", "--cols-multiple-of", "2"],
         {"domain": {"cols": (2, 8), "cols_multiple_of": 2}}),
        ("profile", GOOD, ["--profile", "dev", "--seed", "3"], {"profile": "dev", "seed": 3}),
        ("max-examples", GOOD, ["--max-examples", "2"], {"max_examples": 2}),
        ("timeout", GOOD, ["--timeout", "7"], {"timeout": 7.0}),
        ("invariant", GOOD, ["--invariant", "rows_sum_to_one"],
         {"invariants": ("rows_sum_to_one",)}),
        ("kind", log, ["--kind", "log_softmax"], {"kind": "log_softmax"}),
        ("masked", GOOD, ["--masked"], {"masked": True}),
        ("grad", [f"{STYLES}:softmax_rows", "--backward", f"{STYLES}:softmax_derivative"],
         ["--grad", "elementwise", "--grad-at", "y"], {"grad": "elementwise", "grad_at": "y"}),
        ("rowwise", [f"{STYLES}:softmax_1d", "--backward", f"{STYLES}:softmax_1d_backward"],
         ["--rowwise"], {"rowwise": True}),
        ("axis", [f"{STYLES}:softmax_columns", "--backward", f"{STYLES}:softmax_columns_backward"],
         ["--axis", "0"], {"axis": 0}),
        ("rank", [f"{STYLES}:AttentionSoftmax"], ["--rank", "4"], {"rank": 4}),
        ("autodiff", ["tests/torch_targets.py:torch_softmax"], ["--autodiff", "torch"],
         {"autodiff": "torch"}),
        ("labels", ["tests/ce_styles.py:softmax_loss"],
         ["--kind", "cross_entropy", "--labels", "onehot"],
         {"kind": "cross_entropy", "labels": "onehot"}),
        ("reduction", ["tests/ce_styles.py:sum_loss"],
         ["--kind", "cross_entropy", "--reduction", "sum"],
         {"kind": "cross_entropy", "reduction": "sum"}),
    ]  # fmt: skip
    return [pytest.param(*case[1:], id=case[0]) for case in cases]


@pytest.mark.usefixtures("in_repo_root")
@pytest.mark.parametrize(("target", "flags", "expected"), _flags())
def test_each_flag_reaches_the_child_and_the_report(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    target: list[str],
    flags: list[str],
    expected: dict[str, Any],
) -> None:
    if "--autodiff" in flags:
        require("torch")
    children: list[dict[str, Any]] = []
    real_load = ChildTarget.load

    def load(self: ChildTarget) -> None:
        real_load(self)
        children.append(self.child_options)

    monkeypatch.setattr(ChildTarget, "load", load)
    few = ["--max-examples", "1"] if "--max-examples" not in flags else []
    argv = ["check", *target, *flags, *few, "--jobs", "1", "--format", "json"]
    code, out, err = cli(capsys, *argv)
    assert code in (0, 1), err
    assert children, "no child process was started"
    default = dataclasses.asdict(Options())
    for child in children:  # the child's own copy of the options, as it echoed them
        for field, value in expected.items():
            if isinstance(value, dict):
                assert child[field] == {**default[field], **value}, field
            else:
                assert child[field] == value, field
    command = json.loads(out)["command"]
    for word in flags:  # the reproduce line is written from the same value
        assert word in command.split(), (word, command)
    assert parsed(*command.split()[3:]) == parsed(*flags, *few).replace(
        seed=json.loads(out)["seed"]
    )


def test_the_reproduce_line_parses_back_to_the_same_options() -> None:
    for flags in (
        [],
        ["--dtype", "all"],
        ["--dtype", "all-half", "--accumulate", "input"],
        ["--rows", "1:4", "--cols", "8:64", "--cols-multiple-of", "8", "--timeout", "inf"],
        ["--kind", "log_softmax", "--masked", "--invariant", "matches_reference"],
        ["--grad", "jacobian", "--grad-at", "y", "--axis", "0", "--rank", "3"],
        ["--autodiff", "jax", "--device", "cuda:1", "--profile", "thorough", "--seed", "9"],
        ["--kind", "cross_entropy", "--labels", "probs", "--reduction", "none"],
        ["--kind", "cross_entropy", "--reduction", "sum", "--axis", "1", "--rank", "3"],
    ):
        if "all-half" in flags:
            require("ml_dtypes")
        options = parsed(*flags)
        assert parsed(*options_argv(options)) == options
