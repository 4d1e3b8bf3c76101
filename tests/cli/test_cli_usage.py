"""The command as a user and a CI job meet it: version, help, list --format json, the
junit and github formats, the default dtypes, nothing written into the working
directory, and FILE.py targets that import the user's own package.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from conftest import cli

import softmax_verify
from softmax_verify.invariants import INVARIANTS

ROOT = Path(__file__).resolve().parents[2]
BUGGY = ROOT / "examples" / "notebook_buggy.py"

pytestmark = pytest.mark.usefixtures("in_repo_root")


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "--version")
    assert code == 0
    assert out == f"softmax-verify {softmax_verify.__version__}\n"
    assert err == ""


def test_a_bare_command_prints_the_usage(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys)
    assert code == 2
    assert out == ""
    assert err.startswith("usage: softmax-verify ")
    for command in ("check", "list"):
        assert command in err
    assert "exit status:" in err


def test_check_help_documents_every_option_its_default_and_the_exit_codes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = cli(capsys, "check", "--help")
    assert code == 0
    help_text = " ".join(out.split())  # argparse wraps lines
    for option in (
        "--backward",
        "--dtype",
        "--profile",
        "--max-examples",
        "--seed",
        "--format",
        "--timeout",
        "--invariant",
        "--no-isolate",
    ):
        assert option in help_text, option
    # Each option with a value states its default; the dtype default is both dtypes.
    assert help_text.count("(default:") >= 8
    assert "(default: float32 and float64)" in help_text
    assert "junit" in help_text
    assert "github" in help_text
    assert "0 every invariant held" in help_text
    assert "1 an invariant failed or the implementation errored" in help_text
    assert "2 usage error" in help_text
    assert help_text.count("softmax-verify check ") >= 2  # two examples


def test_list_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "list", "--format", "json")
    assert code == 0
    assert err == ""
    entries = json.loads(out)
    assert [e["id"] for e in entries] == [inv.id for inv in INVARIANTS]
    for entry, inv in zip(entries, INVARIANTS, strict=True):
        assert entry == {
            "id": inv.id,
            "needs_backward": inv.needs_backward,
            "summary": inv.summary,
            "math": inv.math,
            "doc": inv.doc,
        }


def test_default_dtypes_are_float32_and_float64(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(
        capsys, "check", "--invariant", "rows_sum_to_one", "--max-examples", "5", "--format", "json"
    )
    assert code == 0
    assert [(r["invariant"], r["dtype"]) for r in json.loads(out)["results"]] == [
        ("rows_sum_to_one", "float32"),
        ("rows_sum_to_one", "float64"),
    ]


def test_junit_from_the_command(capsys: pytest.CaptureFixture[str]) -> None:
    selected = ("dtype_preserved", "ones_upstream_gives_zero", "stage_gradients")
    argv = [a for inv in selected for a in ("--invariant", inv)]
    code, out, _ = cli(capsys, "check", str(BUGGY), *argv, "--format", "junit")
    assert code == 1
    suite = ET.fromstring(out).find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("6", "4", "0")
    names = [case.get("name") for case in suite.iter("testcase")]
    assert names == [f"{inv}[{dt}]" for inv in selected for dt in ("float32", "float64")]
    failure = suite.find("testcase/failure")
    assert failure is not None
    assert "minimal counterexample:" in (failure.text or "")


def test_github_from_the_command(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(
        capsys,
        "check",
        "examples/notebook_buggy.py",
        "--invariant",
        "stage_gradients",
        "--dtype",
        "float64",
        "--format",
        "github",
    )
    assert code == 1
    (annotation,) = [line for line in out.splitlines() if line.startswith("::")]
    # The line in the user's file where the first wrong stage is computed.
    source = BUGGY.read_text().splitlines()
    line = next(
        i for i, text in enumerate(source, 1) if text.lstrip().startswith('grads["dexps_1"]')
    )
    assert annotation.startswith(
        f"::error file=examples/notebook_buggy.py,line={line},title=softmax-verify%3A "
        "stage_gradients (float64) failed::"
    )


def run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HYPOTHESIS_")}
    return subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
    )


def console_script() -> str:
    return str(Path(sys.executable).parent / "softmax-verify")


def test_check_writes_nothing_into_the_working_directory(tmp_path: Path) -> None:
    target = tmp_path / "mine.py"
    target.write_text(BUGGY.read_text())
    before = sorted(p.name for p in tmp_path.iterdir())
    for isolate in ([], ["--no-isolate"]):
        proc = run(
            [console_script(), "check", "mine.py", "--max-examples", "5", *isolate], tmp_path
        )
        assert proc.returncode == 1, proc.stderr
        # A target's own bytecode cache is Python's doing, not ours.
        after = sorted(p.name for p in tmp_path.iterdir() if p.name != "__pycache__")
        assert after == before, after  # no .hypothesis/


def test_verify_writes_nothing_into_the_working_directory(tmp_path: Path) -> None:
    code = (
        "import softmax_verify as sv\n"
        "r = sv.verify(sv.softmax, sv.softmax_backward, max_examples=5)\n"
        "assert r, r.to_text()\n"
    )
    proc = run([sys.executable, "-c", code], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_file_target_imports_the_users_package_from_the_working_directory(
    tmp_path: Path,
) -> None:
    package = tmp_path / "mylayers"
    package.mkdir()
    (package / "__init__.py").write_text(
        "from softmax_verify.bundled.reference import softmax, softmax_backward\n"
    )
    adapter = tmp_path / "tests" / "adapter.py"
    adapter.parent.mkdir()
    adapter.write_text(
        "from mylayers import softmax as forward, softmax_backward as backward\n"
        "__all__ = ['backward', 'forward']\n"
    )
    argv = ["check", "tests/adapter.py", "--invariant", "rows_sum_to_one", "--max-examples", "5"]
    script = run([console_script(), *argv], tmp_path)
    module = run([sys.executable, "-m", "softmax_verify", *argv], tmp_path)
    for proc in (script, module):  # the console script and python -m agree
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "2 passed, 0 failed" in proc.stdout


def test_output_writes_the_report_there_and_nothing_to_stdout(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    report = tmp_path / "report.xml"
    argv = ["--invariant", "dtype_preserved", "--dtype", "float64", "--format", "junit"]
    code, out, _ = cli(capsys, "check", str(BUGGY), *argv, "--output", str(report))
    assert code == 0
    assert out == ""
    suite = ET.fromstring(report.read_text()).find("testsuite")
    assert suite is not None
    assert suite.get("tests") == "1"


def test_an_output_that_cannot_be_written_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, err = cli(capsys, "check", str(BUGGY), "--output", str(tmp_path))
    assert (code, out) == (2, "")
    assert err == f"softmax-verify: error: --output {tmp_path}: is a directory\n"
