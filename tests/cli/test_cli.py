"""The ``softmax-verify`` command line: in process through ``cli.main`` and as a real process.

Exit status 0 when nothing failed, 1 when an invariant failed or the code
errored, 2 for a usage error (one line on stderr, no traceback). The JSON
output is checked against its exact schema, as strict JSON.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import cli
from report_schema import BUGGY, ROOT, check_schema, strict_json

from softmax_verify.core.result import Result
from softmax_verify.invariants import INVARIANT_IDS, INVARIANTS, NOTATION
from softmax_verify.run.report import Report

FIXED = "examples/notebook_fixed.py"
NOTEBOOK_FAILS = ("ones_upstream_gives_zero", "central_differences", "jacobian_symmetry")


pytestmark = pytest.mark.usefixtures("in_repo_root")


def json_report(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any]]:
    code, out, err = cli(capsys, "check", *argv, "--format", "json")
    doc = strict_json(out)
    check_schema(doc)
    assert "Traceback" not in err
    return code, doc


def statuses(doc: dict[str, Any]) -> dict[tuple[str, str], str]:
    return {(r["invariant"], r["dtype"]): r["status"] for r in doc["results"]}


# --- check ---------------------------------------------------------------------------------


def test_no_target_checks_the_reference(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "check", "--max-examples", "20")
    assert code == 0
    assert out.startswith("softmax-verify: reference\n")
    for inv in INVARIANT_IDS:
        for dtype in ("float32", "float64"):  # both by default
            assert re.search(rf"^  (PASSED|SKIPPED)\s+{inv}\s+{dtype} ", out, re.M), inv
    assert "0 failed, 0 errors" in out
    assert "reproduce:" not in out  # only printed when something failed


def test_notebook_buggy_fails_and_names_the_stage(capsys: pytest.CaptureFixture[str]) -> None:
    selection = [w for inv in (*NOTEBOOK_FAILS, "stage_gradients") for w in ("--invariant", inv)]
    code, out, err = cli(capsys, "check", BUGGY, *selection)
    assert code == 1
    assert "Traceback" not in out + err
    assert out.startswith(f"softmax-verify: {BUGGY}\n")
    for inv in (*NOTEBOOK_FAILS, "stage_gradients"):
        for dtype in ("float32", "float64"):
            assert re.search(rf"^  FAILED\s+{inv}\s+{dtype} ", out, re.M), inv
            assert f"\nFAILED: {inv} ({dtype})\n" in out
    assert "first wrong stage: dexps_1" in out
    assert "minimal counterexample:" in out
    assert "x = np.array(" in out
    assert "0 passed, 8 failed, 0 errors, 0 skipped" in out


def test_json_output_has_the_exact_schema(capsys: pytest.CaptureFixture[str]) -> None:
    code, doc = json_report(
        capsys,
        BUGGY,
        "--invariant",
        "ones_upstream_gives_zero",
        "--invariant",
        "stage_gradients",
        "--invariant",
        "dtype_preserved",
        "--max-examples",
        "30",
    )
    assert code == 1
    assert doc["target"]["name"] == BUGGY
    assert doc["target"]["text"] == (
        f"{BUGGY}: functions; forward softmax_forward(x) -> y or (y, cache); "
        "backward softmax_backward(dout, cache) -> dx; grad vjp; axis -1"
    )
    assert doc["backward"] is None
    assert doc["profile"] == "ci"
    assert doc["seed"] is None
    assert doc["passed"] is False
    by_inv = {r["invariant"]: r for r in doc["results"]}
    assert list(by_inv) == ["ones_upstream_gives_zero", "stage_gradients", "dtype_preserved"]
    assert by_inv["dtype_preserved"]["status"] == "passed"
    assert by_inv["dtype_preserved"]["counterexample"] is None
    ones = by_inv["ones_upstream_gives_zero"]
    assert ones["status"] == "failed"
    assert ones["first_wrong_stage"] is None
    x = np.array(ones["counterexample"]["x"])
    dout = np.array(ones["counterexample"]["dout"])
    assert x.ndim == 2
    assert x.shape == dout.shape
    assert np.all(dout == dout.flat[0])  # the all-equal upstream this invariant feeds
    assert by_inv["stage_gradients"]["first_wrong_stage"] == "dexps_1"
    # Where in the user's code, and the comparison behind the verdict, as in the text report.
    stage = by_inv["stage_gradients"]
    path, line, code_line = stage["location"].split(":", 2)
    assert path.endswith("notebook_buggy.py")
    assert int(line) > 0
    assert "dexps_1" in code_line
    assert stage["mismatch"]["what"] == "stage dexps_1"
    assert ones["mismatch"]["count"] >= 1
    assert doc["command"].startswith("softmax-verify check ")
    assert by_inv["dtype_preserved"]["location"] is None
    assert by_inv["dtype_preserved"]["mismatch"] is None


def test_json_non_finite_values_are_strings() -> None:
    """Counterexamples and messages survive as strict JSON: nan/inf become strings."""
    result = Result(
        "finite_for_finite_input",
        "float32",
        "failed",
        3,
        0.5,
        "forward(x) is not finite",
        counterexample={
            "x": np.array([[np.nan, np.inf, -np.inf, 1.5]], dtype=np.float32),
            "c": np.array(np.inf),
        },
    )
    report = Report("t", None, "ci", 7, (result,))
    doc = strict_json(report.to_json())
    check_schema(doc)
    assert doc["results"][0]["counterexample"] == {"x": [["nan", "inf", "-inf", 1.5]], "c": "inf"}
    assert doc["seed"] == 7


def test_dtype_all_gives_both_dtypes(capsys: pytest.CaptureFixture[str]) -> None:
    code, doc = json_report(
        capsys, "--dtype", "all", "--invariant", "rows_sum_to_one", "--max-examples", "10"
    )
    assert code == 0
    assert statuses(doc) == {
        ("rows_sum_to_one", "float64"): "passed",
        ("rows_sum_to_one", "float32"): "passed",
    }


def test_float32_only(capsys: pytest.CaptureFixture[str]) -> None:
    code, doc = json_report(
        capsys, "--dtype", "float32", "--invariant", "jacobian_psd", "--max-examples", "10"
    )
    assert code == 0
    assert statuses(doc) == {("jacobian_psd", "float32"): "passed"}


def test_backward_option(capsys: pytest.CaptureFixture[str]) -> None:
    fwd, bwd = f"{FIXED}:softmax_forward", f"{FIXED}:softmax_backward"
    code, doc = json_report(
        capsys,
        fwd,
        "--backward",
        bwd,
        "--invariant",
        "stage_gradients",
        "--invariant",
        "ones_upstream_gives_zero",
        "--max-examples",
        "20",
    )
    assert code == 0
    assert doc["target"]["name"] == fwd
    assert doc["backward"] == bwd
    assert set(statuses(doc).values()) == {"passed"}

    # the buggy notebook's backward paired with the fixed forward is still caught
    code, doc = json_report(
        capsys,
        fwd,
        "--backward",
        f"{BUGGY}:softmax_backward",
        "--invariant",
        "stage_gradients",
        "--dtype",
        "float64",
    )
    assert code == 1
    (result,) = doc["results"]
    assert result["status"] == "failed"
    assert result["first_wrong_stage"] == "dexps_1"


def test_module_attr_target_without_backward_skips_backward_invariants(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, doc = json_report(
        capsys,
        "softmax_verify.bundled.reference:softmax",
        "--dtype",
        "float64",
        "--invariant",
        "matches_reference",
        "--invariant",
        "jacobian_symmetry",
        "--max-examples",
        "10",
    )
    assert code == 0
    assert statuses(doc) == {
        ("matches_reference", "float64"): "passed",
        ("jacobian_symmetry", "float64"): "skipped",
    }
    assert doc["results"][1]["message"] == "no backward given"


def test_invariant_selection_runs_in_the_order_given(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(
        capsys,
        "check",
        "--invariant",
        "jacobian_psd",
        "--invariant",
        "rows_sum_to_one",
        "--dtype",
        "float64",
        "--max-examples",
        "5",
    )
    assert code == 0
    listed = re.findall(r"^  PASSED\s+(\w+)", out, re.M)
    assert listed == ["jacobian_psd", "rows_sum_to_one"]  # in the order asked for


def test_seed_appears_in_the_reproduce_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(
        capsys, "check", BUGGY, "--invariant", "ones_upstream_gives_zero", "--seed", "7"
    )
    assert code == 1
    assert "profile ci, seed 7" in out
    assert (
        f"reproduce: softmax-verify check {BUGGY} --profile ci --seed 7 "
        "--invariant ones_upstream_gives_zero"
    ) in out
    code, out, _ = cli(
        capsys, "check", BUGGY, "--dtype", "float32", "--invariant", "ones_upstream_gives_zero"
    )
    assert code == 1
    assert f"reproduce: softmax-verify check {BUGGY} --dtype float32 --profile ci " in out


def test_drawn_seed_reproduces_the_run(capsys: pytest.CaptureFixture[str]) -> None:
    argv = (BUGGY, "--profile", "dev", "--invariant", "jacobian_symmetry", "--max-examples", "20")
    code, out, _ = cli(capsys, "check", *argv)
    assert code == 1
    match = re.search(r"^reproduce: (.*--seed (\d+).*)$", out, re.M)
    assert match is not None, out
    seed = match.group(2)
    assert f"profile dev, seed {seed}" in out
    first = json_report(capsys, *argv, "--seed", seed)[1]
    second = json_report(capsys, *argv, "--seed", seed)[1]
    assert first["seed"] == second["seed"] == int(seed)
    assert first["results"][0]["status"] == "failed"
    assert first["results"][0]["counterexample"] == second["results"][0]["counterexample"]


# --- usage errors: exit 2, one line on stderr, no traceback --------------------------------


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["check", "no/such/file.py"], "no such file"),
        (["check", "no_such_module_xyz:forward"], "cannot import module 'no_such_module_xyz'"),
        (["check", f"{BUGGY}:no_such_attr"], "no attribute 'no_such_attr'"),
        (["check", "--backward", f"{BUGGY}:nope"], "no attribute 'nope'"),
        (["check", "--backward", "nocolon"], "MODULE:ATTR"),
        (["check", "softmax_verify.bundled.reference"], "no forward/backward"),
        (["check", "--dtype", "float8"], "--dtype"),
        (["check", "--max-examples", "0"], "--max-examples"),
        (["check", "--max-examples", "many"], "--max-examples"),
        (["check", "--timeout", "0"], "--timeout"),
        (["check", "--timeout", "-1"], "--timeout"),
        (["check", "--timeout", "soon"], "--timeout"),
        (["check", "--timeout", "nan"], "--timeout"),
        (["check", "--seed", "-3"], "--seed"),
        (["check", "--invariant", "no_such_invariant"], "--invariant"),
        (["check", "--profile", "quick"], "--profile"),
        (["check", "--frobnicate"], "unrecognized arguments: --frobnicate"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_usage_errors_exit_2_with_one_line(
    capsys: pytest.CaptureFixture[str], argv: list[str], fragment: str
) -> None:
    code, out, err = cli(capsys, *argv)
    assert code == 2
    assert out == ""
    assert err.endswith("\n")
    assert err.count("\n") == 1, err  # a single line
    assert err.startswith("softmax-verify: error: ")
    assert fragment in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("kind", "said"),
    [
        ("directory", "is a directory, not a Python file; name a FILE.py in it, or a MODULE"),
        ("fifo", "is a named pipe (FIFO), not a Python file"),
        ("device", "is a character device, not a Python file"),
    ],
)
def test_a_target_that_is_not_a_file_is_named_for_what_it_is(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, kind: str, said: str
) -> None:
    """Not "no such file": the path exists; the message says what it is instead."""
    path = {"directory": tmp_path, "fifo": tmp_path / "pipe.py", "device": Path(os.devnull)}[kind]
    if kind == "fifo":
        os.mkfifo(path)
    code, out, err = cli(capsys, "check", str(path))
    assert code == 2
    assert out == ""
    assert err == f"softmax-verify: error: {path} {said}\n"


def test_failing_import_of_a_target_file_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    broken = tmp_path / "broken_softmax.py"
    broken.write_text("import numpy as np\nraise RuntimeError('half-written cell')\n")
    code, out, err = cli(capsys, "check", str(broken))
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert "RuntimeError: half-written cell" in err


def test_target_calling_sys_exit_at_import_is_an_error_of_the_target(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A script's stray ``sys.exit()`` must not end the run with status 0 and no verdict:
    isolated, every invariant is an error naming it and its line; in process, it is a
    usage error."""
    script = tmp_path / "exiting_softmax.py"
    script.write_text("import sys\nsys.exit()\n")
    code, out, err = cli(capsys, "check", str(script), "--invariant", "rows_sum_to_one")
    assert code == 1
    assert "the target called sys.exit(None) while being loaded" in out
    assert f"  at {script}:2 in <module>" in out
    code, out, err = cli(capsys, "check", str(script), "--no-isolate")
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert "SystemExit" in err


def test_module_target_is_found_in_the_working_directory(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT / "examples")
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", os.getcwd())])
    code, doc = json_report(
        capsys,
        "notebook_fixed:softmax_forward",
        "--backward",
        "notebook_fixed:softmax_backward",
        "--dtype",
        "float64",
        "--invariant",
        "stage_gradients",
        "--max-examples",
        "5",
    )
    assert code == 0
    assert statuses(doc) == {("stage_gradients", "float64"): "passed"}


def test_list_names_every_invariant(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "list")
    assert code == 0
    assert err == ""
    listing, notation = out.split("\nwhere ")
    lines = listing.splitlines()
    assert len(lines) == 2 * len(INVARIANTS)  # the summary's line, then the math's
    for first, second, inv in zip(lines[::2], lines[1::2], INVARIANTS, strict=True):
        words = first.split()
        assert words[0] == inv.id
        assert words[1] == ("backward" if inv.needs_backward else "forward")
        assert first.endswith(f"  {inv.summary}")
        assert second.strip() == inv.math
    assert [line.strip() for line in notation.splitlines()] == list(NOTATION)


# --- the real entry points -----------------------------------------------------------------


def run_process(*argv: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("HYPOTHESIS_PROFILE",)}
    return subprocess.run(
        argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240, check=False
    )


def test_python_m_reference_exits_0() -> None:
    proc = run_process(sys.executable, "-m", "softmax_verify", "check", "--max-examples", "10")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("softmax-verify: reference\n")
    assert "0 failed, 0 errors" in proc.stdout


def test_python_m_buggy_notebook_json_exits_1() -> None:
    proc = run_process(sys.executable, "-m", "softmax_verify", "check", BUGGY, "--format", "json")
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    doc = strict_json(proc.stdout)
    check_schema(doc)
    got = statuses(doc)
    assert list(got) == [(inv, dt) for inv in INVARIANT_IDS for dt in ("float32", "float64")]
    for inv in (*NOTEBOOK_FAILS, "stage_gradients", "finite_for_finite_input"):
        assert got[inv, "float32"] == got[inv, "float64"] == "failed", inv
    assert got["dtype_preserved", "float32"] == got["dtype_preserved", "float64"] == "passed"
    stages = {r["first_wrong_stage"] for r in doc["results"] if r["invariant"] == "stage_gradients"}
    assert stages == {"dexps_1"}


def test_console_script_usage_error_exits_2() -> None:
    script = shutil.which("softmax-verify", path=str(Path(sys.executable).parent))
    assert script is not None, "the softmax-verify console script is not installed"
    proc = run_process(script, "check", "--max-examples", "0")
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1
    assert "Traceback" not in proc.stderr
    proc = run_process(script, "check", "missing_target.py")
    assert proc.returncode == 2
    assert proc.stderr == "softmax-verify: error: no such file: missing_target.py\n"


# --- diagnosis -----------------------------------------------------------------------------


@pytest.mark.parametrize("isolate", [(), ("--no-isolate",)])
def test_json_carries_the_diagnosis(
    capsys: pytest.CaptureFixture[str], isolate: tuple[str, ...]
) -> None:
    """The notebook's forward has no max shift: named, with the region where it fails."""
    code, doc = json_report(
        capsys, BUGGY, *isolate, "--invariant", "finite_for_finite_input", "--dtype", "all"
    )
    assert code == 1
    ids = {d["id"]: d for d in doc["diagnosis"]}
    assert set(ids) == {"no_max_shift", "only_for_large_logits"}
    assert ids["no_max_shift"]["kind"] == "formula"
    assert "x.max(axis=-1, keepdims=True)" in ids["no_max_shift"]["fix"]
    assert "709.8 at float64" in ids["only_for_large_logits"]["summary"]
    assert "88.72 at float32" in ids["only_for_large_logits"]["summary"]


def test_text_has_a_diagnosis_section_and_says_no_known_pattern(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = cli(
        capsys,
        "check",
        BUGGY,
        "--invariant",
        "finite_for_finite_input",
        "--invariant",
        "ones_upstream_gives_zero",
        "--max-examples",
        "30",
        "--dtype",
        "float64",
    )
    assert code == 1
    section = out[out.index("\nDiagnosis\n") :]
    assert out.index("FAILED: ones_upstream_gives_zero") < out.index("\nDiagnosis\n")
    assert "  no_max_shift (formula): the forward exponentiates x without" in section
    assert "    fix: e = np.exp(x - x.max(axis=-1, keepdims=True))" in section
    assert "    evidence: float64: on " in section
    # The notebook's backward mistake is not in the catalogue: said so, not guessed.
    assert "no known pattern for: ones_upstream_gives_zero (float64)" in section


def test_passing_run_has_an_empty_diagnosis(capsys: pytest.CaptureFixture[str]) -> None:
    code, doc = json_report(capsys, "--invariant", "rows_sum_to_one", "--max-examples", "10")
    assert code == 0
    assert doc["diagnosis"] == []
