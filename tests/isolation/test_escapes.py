"""Nothing the target starts outlives ``softmax-verify check``, and nothing it does reaches
the report: processes in sessions of their own and double-forked daemons are stopped
and named however the run ends; the target cannot write into the verifier's stdout
through ``/proc``, nor rewrite the ``--output`` file after the run.

Each run is a real ``softmax-verify`` process (``python -m softmax_verify``: the
supervisor, which runs the verifier in a process of its own) with a hang guard."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from report_schema import ROOT, strict_json
from test_hostile import GUARD_SECONDS, HOSTILE, environment, marked, only

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

COMMAND = [sys.executable, "-m", "softmax_verify", "check"]
#: A short run: one dtype, few examples.
SHORT = ["--dtype", "float64", "--max-examples", "5", "--format", "json"]


def gone_within(pids: list[int], seconds: float) -> list[int]:
    """Those of ``pids`` still alive (zombies excluded) after up to ``seconds``."""

    def alive() -> list[int]:
        found = []
        for pid in pids:
            try:
                state = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
            except OSError:
                continue
            if state != b"Z":
                found.append(pid)
        return found

    deadline = time.monotonic() + seconds
    while (left := alive()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def kill_marked(mark: str) -> None:
    """Whatever a failing test left running, stopped (so that it does not linger)."""
    for pid in marked(mark):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            continue


def read_pids(path: Path) -> list[int]:
    return [int(line) for line in path.read_text().split()] if path.exists() else []


def leaver(tmp_path: Path, **extra: str) -> tuple[dict[str, str], str, Path]:
    env, mark, _ = environment(tmp_path)
    pids = tmp_path / "pids"
    return {**env, "SOFTMAX_VERIFY_TEST_PIDS": str(pids), **extra}, mark, pids


@pytest.mark.parametrize("wrong", [False, True], ids=["passes", "fails"])
def test_leftovers_in_any_session_are_stopped_and_named(tmp_path: Path, wrong: bool) -> None:
    extra = {"SOFTMAX_VERIFY_TEST_WRONG": "1"} if wrong else {}
    env, mark, pids = leaver(tmp_path, **extra)
    try:
        done = subprocess.run(
            [*COMMAND, str(HOSTILE / "leaves_processes.py"), *SHORT],
            capture_output=True, text=True, env=env, cwd=ROOT, timeout=GUARD_SECONDS,
        )  # fmt: skip
        left = read_pids(pids)
        assert len(left) >= 3, done.stderr  # each import leaves three
        assert gone_within(left, 1.0) == []
        assert done.returncode == (1 if wrong else 0), done.stderr
        (note,) = strict_json(done.stdout)["notes"]
        named = {int(p) for p in note.split("(pid ")[1].split(")")[0].split(", ")}
        assert set(left) <= named, (left, note)
    finally:
        kill_marked(mark)


def started_leaver(tmp_path: Path) -> tuple[subprocess.Popen[str], str, Path]:
    """A command on a slow target, once the target's import has left its processes."""
    env, mark, pids = leaver(tmp_path, SOFTMAX_VERIFY_TEST_SLEEP="0.2")
    proc = subprocess.Popen(
        [*COMMAND, str(HOSTILE / "leaves_processes.py"), "--dtype", "float64"],
        env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60.0
    while len(read_pids(pids)) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(read_pids(pids)) == 3, "the target did not start its processes"
    time.sleep(0.5)  # into the checks
    return proc, mark, pids


def verifier_of(command: int) -> int:
    """The verifier: the command's (the supervisor's) only child; the command itself when
    it runs the verifier in its own process."""
    tasks = Path(f"/proc/{command}/task")
    children = [int(p) for t in tasks.iterdir() for p in (t / "children").read_text().split()]
    return children[0] if children else command


@pytest.mark.parametrize(
    "how", ["SIGTERM", "SIGINT", "SIGKILL", "SIGKILL of the verifier"]
)  # fmt: skip
def test_leftovers_die_however_the_run_ends(tmp_path: Path, how: str) -> None:
    proc, mark, pids = started_leaver(tmp_path)
    try:
        if how == "SIGKILL of the verifier":
            os.kill(verifier_of(proc.pid), signal.SIGKILL)
        else:
            proc.send_signal(getattr(signal, how))
        _, err = proc.communicate(timeout=GUARD_SECONDS)
        assert proc.returncode != 0
        assert "Traceback" not in err, err
        assert gone_within(read_pids(pids), 1.0) == []
    finally:
        proc.kill()
        kill_marked(mark)


def test_a_captured_pipe_is_not_held_open_after_the_run(tmp_path: Path) -> None:
    """``check ... 2>&1 | cat``: a leftover held the pipe (its stderr) until it ended."""
    env, mark, _ = leaver(tmp_path)
    command = " ".join([*COMMAND, str(HOSTILE / "leaves_processes.py"), *SHORT])
    try:
        done = subprocess.run(
            ["bash", "-c", f"{command} 2>&1 | cat"],
            capture_output=True, text=True, env=env, cwd=ROOT, timeout=60,
        )  # fmt: skip
        assert done.returncode == 0
        assert '"passed": true' in done.stdout
    finally:
        kill_marked(mark)


# --- the report ------------------------------------------------------------------------------


def test_the_target_cannot_write_into_the_verifiers_stdout(tmp_path: Path) -> None:
    """The target opens ``/proc/<pid>/fd/1`` of each process between it and this test (the
    verifier, the supervisor), takes it with ``pidfd_getfd``, and opens their memory."""
    env, mark, _ = environment(tmp_path)
    env["SOFTMAX_VERIFY_TEST_STOP"] = str(os.getpid())
    try:
        done = subprocess.run(
            [*COMMAND, str(HOSTILE / "forges_report.py"), *SHORT, *only("rows_sum_to_one")],
            capture_output=True, text=True, env=env, cwd=ROOT, timeout=GUARD_SECONDS,
        )  # fmt: skip
    finally:
        kill_marked(mark)
    attempts = [line for line in done.stderr.splitlines() if line.startswith("forger: ")]
    assert len(attempts) >= 3, done.stderr  # it tried: every ancestor, every way
    assert not [line for line in attempts if line.endswith(": done")], attempts
    assert "forged" not in done.stdout
    assert strict_json(done.stdout)["passed"] is False
    assert done.returncode == 1


def test_a_watcher_cannot_rewrite_the_output_file(tmp_path: Path) -> None:
    """The target leaves a process that opens the report file, waits for the verifier's
    exit, then writes a passing report through that descriptor and by name."""
    env, mark, _ = environment(tmp_path)
    output = tmp_path / "report.json"
    env["SOFTMAX_VERIFY_TEST_OUTPUT"] = str(output)
    argv = [*SHORT, *only("rows_sum_to_one"), "--output", str(output)]
    try:
        done = subprocess.run(
            [*COMMAND, str(HOSTILE / "rewrites_output.py"), *argv],
            capture_output=True, text=True, env=env, cwd=ROOT, timeout=GUARD_SECONDS,
        )  # fmt: skip
        time.sleep(1.0)  # the watcher's time to act, were it alive
    finally:
        kill_marked(mark)
    assert done.returncode == 1, done.stderr
    assert done.stdout == ""
    report = json.loads(output.read_text())
    assert report["passed"] is False
    assert "forged" not in report
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".report")] == []


# --- the verifier's own waits ------------------------------------------------------------------


@pytest.mark.parametrize("interrupted", [False, True], ids=["waits", "ctrl-c"])
def test_a_child_that_closes_its_channel_and_lives_on_is_stopped(
    tmp_path: Path, interrupted: bool
) -> None:
    """The verifier waited for such a child's exit without a limit; a Ctrl-C in that wait
    stopped the child from the signal handler, which waited for the same lock: a deadlock."""
    env, mark, note = leaver(tmp_path)
    proc = subprocess.Popen(
        [*COMMAND, str(HOSTILE / "closes_channel.py"), *SHORT],
        env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60.0
        while not note.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert note.exists(), "the target was not loaded"
        if interrupted:
            time.sleep(0.5)  # the verifier waits for the child's exit now
            os.kill(verifier_of(proc.pid), signal.SIGINT)
        out, err = proc.communicate(timeout=30)  # the child lives 60 s
        assert "Traceback" not in err, err
        if interrupted:
            assert proc.returncode == 130, err
            assert "softmax-verify: interrupted" in err
        else:
            assert proc.returncode == 1, err
            assert "while being loaded" in out
        assert marked(mark) == []
    finally:
        proc.kill()
        kill_marked(mark)
