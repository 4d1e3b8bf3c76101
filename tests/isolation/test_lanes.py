"""Dtypes checked side by side (``--jobs``, ``softmax_verify.isolation.lanes``).

A run in lanes must be the run in one process, only sooner: the same results in the
same order, the same diagnosis, and nothing left behind. A lane that dies is reported.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import cli
from test_hostile import check

from softmax_verify.core.options import Options
from softmax_verify.core.result import Result
from softmax_verify.isolation.lanes import lane_dtypes
from softmax_verify.isolation.verifier import verify_isolated
from softmax_verify.run.plan import RunPlan

BAD = str(Path(__file__).resolve().parents[1] / "bad_impls.py")


def test_lanes_deal_the_dtypes_in_turn() -> None:
    dtypes = ["float64", "float32", "float16", "bfloat16"]
    assert lane_dtypes(dtypes, 1) == [dtypes]
    assert lane_dtypes(dtypes, 2) == [["float64", "float16"], ["float32", "bfloat16"]]
    assert lane_dtypes(dtypes[:2], 8) == [["float64"], ["float32"]]
    assert lane_dtypes(dtypes[:1], None) == [["float64"]]
    assert 1 <= len(lane_dtypes(dtypes, None)) <= 4


def _without_times(doc: dict[str, Any]) -> dict[str, Any]:
    for result in doc["results"]:
        result.pop("seconds")
    doc.pop("command", None)
    return doc


@pytest.mark.parametrize("target", ["naive_forward", "temperature_forward"])
def test_two_lanes_give_the_report_of_one(capsys: pytest.CaptureFixture[str], target: str) -> None:
    """Derandomized (ci): the same examples, so the same counterexamples and diagnosis."""
    argv = [
        "check", f"{BAD}:{target}", "--format", "json", "--max-examples", "20",
        "--invariant", "finite_for_finite_input", "--invariant", "matches_reference",
    ]  # fmt: skip
    one_code, one, _ = cli(capsys, *argv, "--jobs", "1")
    two_code, two, _ = cli(capsys, *argv, "--jobs", "2")
    assert one_code == two_code == 1
    assert _without_times(json.loads(two)) == _without_times(json.loads(one))
    assert json.loads(one)["diagnosis"], "a diagnosis is compared, not two empty lists"


def test_progress_comes_in_report_order() -> None:
    seen: list[Result] = []
    invariants = ["rows_sum_to_one", "matches_reference", "row_independence"]
    plan = RunPlan.build(Options(invariants=invariants, max_examples=5), progress=seen.append)
    report = verify_isolated(None, None, plan, jobs=2)
    assert [(r.invariant, r.dtype) for r in seen] == [
        (inv, dtype) for inv in invariants for dtype in ("float32", "float64")
    ]
    assert list(report.results) == seen


def test_a_target_that_kills_its_lane_is_an_error_of_that_lane(tmp_path: Path) -> None:
    """The float32 lane dies with its pairs unchecked: they are errors saying so, the
    float64 lane's results stand, and nothing is left running."""
    run = check(tmp_path, "kills_parent.py", "--jobs", "2", "--invariant", "rows_sum_to_one")
    assert run.code == 1
    assert run.result("rows_sum_to_one", "float64")["status"] == "passed"
    lost = run.result("rows_sum_to_one", "float32")
    assert lost["status"] == "error"
    assert lost["message"] == (
        "the verifier's process for float32 crashed the process (SIGKILL, signal 9) "
        "before checking rows_sum_to_one at float32"
    )


def test_a_usage_error_found_by_the_lanes_is_one_line(tmp_path: Path) -> None:
    """Both lanes find the target unreadable: one usage line, exit 2, nothing left."""
    run = check(tmp_path, "slow.py:no_such_function", "--jobs", "2")
    assert run.code == 2
    assert run.out == ""
    assert run.err.count("\n") == 1
    assert "no_such_function" in run.err
