"""Crash isolation of ``softmax-verify check``: a dying process is a result, not the end.

The command line runs in this process through ``cli.main``; the checks run in a
spawned child, so the code under test may segfault, abort or ``os._exit`` there.
The crashing invariant is an error naming the signal (or exit status) and the
user's line, the others keep their own statuses, and an isolated run gives the
same report as ``--no-isolate``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import cli
from report_schema import BUGGY, ROOT, check_schema, strict_json

import softmax_verify.isolation.remote as _remote
from softmax_verify.isolation.remote import crash_location

SOFTMAX = """
import ctypes
import os
import signal
import time

import numpy as np


def softmax(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def backward(dout, y):
    return y * (dout - (dout * y).sum(axis=1, keepdims=True))
"""

ABORTING_BACKWARD = (
    SOFTMAX
    + """

def forward(x):
    return softmax(x)


def backward(dout, y):
    os.abort()  # CRASH-HERE
"""
)

SEGFAULTING_FLOAT32 = (
    SOFTMAX
    + """

def forward(x):
    if x.dtype == np.float32:
        ctypes.string_at(0)  # CRASH-HERE
    return softmax(x)
"""
)

ABORTING_ON_LARGE_LOGITS = (
    SOFTMAX
    + """

def forward(x):
    if np.abs(x).max() > 100:
        os.abort()  # CRASH-HERE
    return softmax(x)
"""
)

EXITING_ONCE = (
    SOFTMAX
    + """
MARK = os.path.join(os.path.dirname(os.path.abspath(__file__)), "exited-once")


def forward(x):
    if not os.path.exists(MARK):  # the first call of the whole run, in whichever process
        open(MARK, "w").close()
        os._exit(3)  # CRASH-HERE
    return softmax(x)
"""
)

HANGING_FLOAT32 = (
    SOFTMAX
    + """

def forward(x):
    if x.dtype == np.float32:
        signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGALRM])  # deaf to the time limit
        time.sleep(3600)  # CRASH-HERE
    return softmax(x)
"""
)

CRASHING_WHEN_LOADED = (
    SOFTMAX
    + """
os.abort()  # CRASH-HERE

forward = softmax
"""
)

FORWARD_ONLY = ("rows_sum_to_one", "matches_reference")


pytestmark = pytest.mark.usefixtures("in_repo_root")


def target(tmp_path: Path, source: str) -> tuple[str, str]:
    """Write ``source`` to a file: (its path, ``path:line`` of its CRASH-HERE line)."""
    path = tmp_path / "user_softmax.py"
    path.write_text(source)
    line = next(i for i, text in enumerate(source.splitlines(), 1) if "CRASH-HERE" in text)
    return str(path), f"{path}:{line}"


def selection(*invariants: str) -> list[str]:
    return [word for inv in invariants for word in ("--invariant", inv)]


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any]]:
    code, out, err = cli(capsys, "check", *argv, "--max-examples", "5", "--format", "json")
    doc = strict_json(out)
    check_schema(doc)
    assert "Traceback" not in err
    return code, doc


def by_pair(doc: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["invariant"], r["dtype"]): r for r in doc["results"]}


# --- crashes -------------------------------------------------------------------------------


def test_abort_in_backward_is_an_error_and_the_forward_invariants_pass(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path, where = target(tmp_path, ABORTING_BACKWARD)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)  # progress lines are for terminals
    argv = (path, *selection("rows_sum_to_one", "ones_upstream_gives_zero", "matches_reference"))
    code, out, err = cli(capsys, "check", *argv, "--dtype", "float64", "--max-examples", "5")
    assert code == 1
    listed = re.findall(r"^  (\w+)\s+(\w+)\s+float64 ", out, re.M)
    assert listed == [
        ("PASSED", "rows_sum_to_one"),
        ("ERROR", "ones_upstream_gives_zero"),
        ("PASSED", "matches_reference"),  # run by a new child after the crash
    ]
    assert (
        "\nERROR: ones_upstream_gives_zero (float64)\n"
        f"  backward crashed the process (SIGABRT, signal 6) (at {where} in backward)\n"
        f"  at {where} in backward\n"
    ) in out
    assert "1 errors" in out
    assert re.findall(r"^  (\w+)\s+(\w+) \(float64\)", err, re.M) == [
        ("passed", "rows_sum_to_one"),
        ("error", "ones_upstream_gives_zero"),
        ("passed", "matches_reference"),
    ]


def test_segfault_on_float32_only_fails_the_float32_pairs(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path, where = target(tmp_path, SEGFAULTING_FLOAT32)
    code, doc = run_json(capsys, path, "--dtype", "all", *selection(*FORWARD_ONLY))
    assert code == 1
    assert doc["passed"] is False
    results = by_pair(doc)
    assert list(results) == [(inv, dt) for inv in FORWARD_ONLY for dt in ("float64", "float32")]
    for inv in FORWARD_ONLY:
        assert results[inv, "float64"]["status"] == "passed"
        assert results[inv, "float64"]["examples"] == 5
        crashed = results[inv, "float32"]
        assert crashed["status"] == "error"
        assert crashed["message"] == (
            f"forward crashed the process (SIGSEGV, signal 11) (at {where} in forward)"
        )
        # the case the child was on when it died, kept by the verifier: not shrunk
        assert crashed["minimal"] is False
        crashed_x = np.array(crashed["counterexample"]["x"], dtype=np.float32)
        assert crashed_x.ndim == 2

    # the location is in the text report too
    code, out, _ = cli(capsys, "check", path, "--dtype", "float32", *selection("rows_sum_to_one"))
    assert code == 1
    assert f"  at {where} in forward\n" in out


def test_a_crash_reports_the_case_it_happened_on(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """The forward aborts on logits above 100: the error carries that very case (the
    verifier generated it) and says it is not shrunk."""
    path, where = target(tmp_path, ABORTING_ON_LARGE_LOGITS)
    code, doc = run_json(capsys, path, *selection("finite_for_finite_input"))
    assert code == 1
    crashed = by_pair(doc)["finite_for_finite_input", "float64"]
    assert crashed["status"] == "error"
    assert crashed["location"] == f"{where} in forward"
    assert crashed["minimal"] is False
    x = np.array(crashed["counterexample"]["x"], dtype=np.float64)
    assert np.abs(x).max() > 100  # the input it crashed on, not an earlier one

    code, out, _ = cli(
        capsys, "check", path, "--max-examples", "5", *selection("finite_for_finite_input")
    )
    assert code == 1
    # Printed in full or by shape, as its size decides; the JSON above has its values.
    assert "  counterexample (the input it stopped on; not shrunk):\n    x" in out
    assert "minimal counterexample" not in out


def test_exit_on_the_first_call_fails_that_invariant_only(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path, _ = target(tmp_path, EXITING_ONCE)
    argv = (path, "--backward", f"{path}:backward", "--dtype", "float64")
    code, doc = run_json(capsys, *argv, *selection(*FORWARD_ONLY, "ones_upstream_gives_zero"))
    assert code == 1
    assert (tmp_path / "exited-once").exists()
    first, *rest = doc["results"]
    assert first["invariant"] == "rows_sum_to_one"
    assert first["status"] == "error"
    assert first["message"].startswith("forward ended the process (exit status 3) (at ")
    assert [(r["invariant"], r["status"]) for r in rest] == [
        ("matches_reference", "passed"),
        ("ones_upstream_gives_zero", "passed"),
    ]


def test_a_call_deaf_to_the_time_limit_is_stopped_by_the_watchdog(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """The forward blocks SIGALRM and sleeps for an hour: the parent stops the child.

    The verdict does not depend on timing: the float32 call never returns, the float64
    calls return at once, well within the allowance (0.2 s + the grace).
    """
    path, where = target(tmp_path, HANGING_FLOAT32)
    argv = ("check", path, "--dtype", "all", "--timeout", "0.2", "--max-examples", "5")
    code, out, _ = cli(capsys, *argv, *selection("rows_sum_to_one"))
    assert code == 1
    assert re.search(r"^  PASSED\s+rows_sum_to_one\s+float64 ", out, re.M)
    assert re.search(r"^  ERROR\s+rows_sum_to_one\s+float32 ", out, re.M)
    assert (
        "  forward did not return within the 0.2 s time limit and could not be interrupted; "
        f"the process was stopped after {0.2 + _remote.GRACE:.3g} s (+2 s to stop); the "
        f"faulthandler dump shows it at {where} in forward (at {where} in forward)\n"
        f"  at {where} in forward\n"
        "  counterexample (the input it stopped on; not shrunk):\n"
        "    x = np.array("
    ) in out
    assert "dtype=np.float32)" in out.split("ERROR: rows_sum_to_one (float32)")[1]


def test_a_crash_while_loading_the_target_fails_every_pair_once(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path, where = target(tmp_path, CRASHING_WHEN_LOADED)
    argv = (path, "--dtype", "float64", *selection(*FORWARD_ONLY), "--max-examples", "5")
    code, out, _ = cli(capsys, "check", *argv)
    assert code == 1
    for inv in FORWARD_ONLY:
        assert re.search(rf"^  ERROR\s+{inv}\s+float64 ", out, re.M), inv
        assert (
            "  the target crashed the process (SIGABRT, signal 6) while being loaded, "
            f"before checking {inv} at float64\n  at {where} in <module>\n"
        ) in out
    assert "0 passed, 0 failed, 2 errors" in out


# --- isolated and in process give the same report ------------------------------------------


def test_reference_isolated_matches_no_isolate(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ("--dtype", "all", *selection(*FORWARD_ONLY, "input_not_mutated", "jacobian_psd"))
    code, isolated = run_json(capsys, *argv)
    in_process_code, in_process = run_json(capsys, *argv, "--no-isolate")
    assert code == in_process_code == 0
    assert len(isolated["results"]) == 8
    for doc in (isolated, in_process):
        for result in doc["results"]:
            result.pop("seconds")
    assert isolated == in_process


def test_failures_round_trip_exactly(capsys: pytest.CaptureFixture[str]) -> None:
    """Counterexamples, mismatches, stages and locations of a failing target are identical."""
    argv = (
        "check",
        BUGGY,
        "--dtype",
        "all",
        "--profile",
        "dev",
        "--seed",
        "11",
        "--max-examples",
        "20",
        *selection("finite_for_finite_input", "ones_upstream_gives_zero", "stage_gradients"),
    )
    code, isolated, _ = cli(capsys, *argv)
    in_process_code, in_process, _ = cli(capsys, *argv, "--no-isolate")
    assert code == in_process_code == 1
    assert "minimal counterexample:" in isolated
    assert "first wrong stage: dexps_1" in isolated
    assert "profile dev, seed 11" in isolated

    def timeless(text: str) -> str:
        return re.sub(r"\d+\.\d\d s$", "_ s", text, flags=re.M)

    assert timeless(isolated) == timeless(in_process)


def test_a_drawn_seed_is_shared_by_every_child(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A crash starts a new child; the pairs after it still run under the reported seed."""
    path, _ = target(tmp_path, SEGFAULTING_FLOAT32)
    argv = (path, "--dtype", "all", "--profile", "dev", *selection(*FORWARD_ONLY))
    _, drawn = run_json(capsys, *argv)
    assert isinstance(drawn["seed"], int)
    _, replayed = run_json(capsys, *argv, "--seed", str(drawn["seed"]))
    assert replayed["seed"] == drawn["seed"]
    for doc in (drawn, replayed):
        for result in doc["results"]:
            result.pop("seconds")
    assert drawn == replayed


# --- the parts -----------------------------------------------------------------------------


def test_crash_location_is_the_innermost_user_frame_of_the_checking_thread() -> None:
    pkg = Path(_remote.__file__).parent.parent  # the softmax_verify folder
    stdlib = Path(re.__file__).parent
    dump = f"""Fatal Python error: Segmentation fault

Thread 0x00007f0000000001 (most recent call first):
  File "/home/u/pool.py", line 9 in work
  File "{stdlib}/threading.py", line 982 in run

Current thread 0x00007f0000000002 (most recent call first):
  File "{stdlib}/ctypes/__init__.py", line 519 in string_at
  File "/venv/site-packages/numpy/core/fromnumeric.py", line 88 in sum
  File "/home/u/my_softmax.py", line 12 in helper
  File "/home/u/my_softmax.py", line 20 in forward
  File "{pkg}/target/sandbox.py", line 98 in _call_with_alarm
  File "{pkg}/isolation/child/serve.py", line 60 in _forward
  File "{pkg}/isolation/child/main.py", line 90 in main"""
    assert crash_location(dump) == "/home/u/my_softmax.py:12 in helper"
    # no user frame in the checking thread: the other threads are searched next
    only_ours = dump.replace("/home/u/my_softmax.py", f"{pkg}/bundled/reference.py")
    assert crash_location(only_ours) == "/home/u/pool.py:9 in work"
    assert crash_location(only_ours.replace("/home/u/pool.py", f"{stdlib}/queue.py")) is None
    assert crash_location("") is None


# --- what the code under test prints -------------------------------------------------------

PRINTING = (
    SOFTMAX
    + """

def forward(x):
    print("debug: forward called")  # user code that prints, as notebooks do
    if os.environ.get("WRITE_TO_DESCRIPTOR"):
        os.write(1, b"debug: from C-level stdout\\n")
    return softmax(x)
"""
)


@pytest.mark.parametrize("isolate", [True, False], ids=["isolated", "in-process"])
def test_prints_of_the_code_under_test_go_to_stderr(tmp_path: Path, isolate: bool) -> None:
    """stdout carries only the report, so ``--format json`` stays parseable."""
    path = tmp_path / "printing_softmax.py"
    path.write_text(PRINTING)
    argv = [sys.executable, "-m", "softmax_verify", "check", str(path), "--format", "json"]
    argv += [*selection("rows_sum_to_one"), "--max-examples", "3"]
    env = dict(os.environ)
    if isolate:  # the child's descriptor 1 is stderr's; in process only sys.stdout is moved
        env["WRITE_TO_DESCRIPTOR"] = "1"
    else:
        argv.append("--no-isolate")
    done = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    doc = strict_json(done.stdout)
    check_schema(doc)
    assert doc["passed"] is True
    assert "debug: forward called" in done.stderr
    assert ("debug: from C-level stdout" in done.stderr) is isolate


def test_the_child_of_a_numpy_target_imports_no_framework(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The libraries are imported when a target needs them, never at the child's start:
    the target raises if one is there (tests/lean_target.py)."""
    code, out, _ = cli(
        capsys,
        "check",
        str(ROOT / "tests" / "lean_target.py") + ":softmax",
        "--invariant",
        "rows_sum_to_one",
        "--max-examples",
        "3",
    )
    assert code == 0, out
