"""``softmax-verify check`` on careless and hostile targets (tests/hostile/).

Each target is a plain softmax plus one habit real code has: exiting, crashing or
hanging at import, printing, changing numpy's global state, drawing random numbers,
starting processes, raising odd exceptions. Each run is a real ``softmax-verify``
process with a hang guard (a generous bound on its wall time, not a speed test), and
afterwards no process it started, directly or not, is left, and no temporary file.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import cli
from report_schema import ROOT, check_schema, strict_json

import softmax_verify.isolation.channel as _channel
import softmax_verify.isolation.remote as _remote

HOSTILE = Path(__file__).resolve().parents[1] / "hostile"
MARK = "SOFTMAX_VERIFY_TEST_MARK"
#: The hang guard of one run: far beyond what any of these runs needs.
GUARD_SECONDS = 240.0

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def here(name: str) -> str:
    """``path:line`` of the line marked ``# HERE`` in a hostile target."""
    path = HOSTILE / name
    line = next(i for i, t in enumerate(path.read_text().splitlines(), 1) if "# HERE" in t)
    return f"{path}:{line}"


def marked(mark: str) -> list[int]:
    """Live processes (zombies excluded) whose environment carries ``MARK=mark``."""
    found = []
    needle = f"{MARK}={mark}".encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes()
            stat = Path(f"/proc/{entry}/stat").read_bytes().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if needle in environ.split(b"\0") and stat[0] != b"Z":
            found.append(int(entry))
    return found


def assert_nothing_left(mark: str, tmp: Path) -> None:
    """No marked process survives (a moment to die is allowed), and no temporary file."""
    deadline = time.monotonic() + 10.0
    while (left := marked(mark)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert left == [], f"processes left running: {left}"
    assert list(tmp.iterdir()) == []


@dataclass
class Run:
    code: int
    out: str
    err: str
    seconds: float

    @property
    def doc(self) -> Any:
        doc = strict_json(self.out)
        check_schema(doc)
        return doc

    def result(self, invariant: str, dtype: str = "float64") -> dict[str, Any]:
        return next(
            r for r in self.doc["results"] if (r["invariant"], r["dtype"]) == (invariant, dtype)
        )


def environment(tmp_path: Path) -> tuple[dict[str, str], str, Path]:
    mark, tmp = uuid.uuid4().hex, tmp_path / "tmp"
    tmp.mkdir()
    return {**os.environ, MARK: mark, "TMPDIR": str(tmp)}, mark, tmp


def check(tmp_path: Path, target: str, *argv: str, fmt: str = "json") -> Run:
    """``softmax-verify check hostile/TARGET ARGV --format FMT`` in a process of its own."""
    env, mark, tmp = environment(tmp_path)
    command = [sys.executable, "-m", "softmax_verify", "check", str(HOSTILE / target), *argv]
    start = time.monotonic()
    done = subprocess.run(
        [*command, "--format", fmt],
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=env,
        cwd=ROOT,
        timeout=GUARD_SECONDS,
    )
    seconds = time.monotonic() - start
    assert_nothing_left(mark, tmp)
    assert "Traceback" not in done.stderr, done.stderr
    return Run(done.returncode, done.stdout, done.stderr, seconds)


def only(*invariants: str) -> list[str]:
    return [word for inv in invariants for word in ("--invariant", inv)]


# --- the target is loaded only in the child ------------------------------------------------


def test_os_exit_at_import_is_an_error_not_a_pass(tmp_path: Path) -> None:
    run = check(tmp_path, "exit_at_import.py", *only("rows_sum_to_one", "matches_reference"))
    assert run.code == 1
    assert run.doc["passed"] is False
    for inv in ("rows_sum_to_one", "matches_reference"):
        result = run.result(inv)
        assert result["status"] == "error"
        assert result["message"] == (
            "the target ended the process (exit status 0) while being loaded, "
            f"before checking {inv} at float64"
        )
        assert result["location"] == f"{here('exit_at_import.py')} in <module>"


def test_segfault_at_import_is_reported(tmp_path: Path) -> None:
    run = check(tmp_path, "segfault_at_import.py", *only("rows_sum_to_one"), fmt="text")
    assert run.code == 1
    assert "the target crashed the process (SIGSEGV, signal 11) while being loaded" in run.out
    assert f"  at {here('segfault_at_import.py')} in <module>\n" in run.out


def test_hang_at_import_is_stopped(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """In process (to shorten the loading allowance, so in one lane: ``--jobs 1``): stopped
    after timeout + allowance."""
    _env, mark, tmp = environment(tmp_path)
    monkeypatch.setenv(MARK, mark)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    # The loading allowance is read where the child is loaded, in the channel. It counts the
    # child's own imports too (numpy, this package), 3 to 4.5 s on a 2-core machine at a
    # load of 8: 6 s leaves the stack at the target's hanging line even then.
    monkeypatch.setattr(_channel, "LOAD_SECONDS", 6.0)
    target = str(HOSTILE / "hang_at_import.py")
    code, out, _ = cli(
        capsys, "check", target, "--timeout", "1", "--jobs", "1", *only("rows_sum_to_one")
    )
    assert_nothing_left(mark, tmp)
    assert code == 1
    assert "the target did not finish loading within 7 s and was stopped" in out
    assert f"  at {here('hang_at_import.py')} in <module>\n" in out


def test_prints_at_import_leave_stdout_to_the_report(tmp_path: Path) -> None:
    run = check(tmp_path, "print_at_import.py", *only("rows_sum_to_one"), "--max-examples", "3")
    assert run.code == 0, run.err
    assert run.doc["passed"] is True
    assert "self-test:" in run.err
    assert "self-test from C-level stdout" in run.err


# --- the target's global state stays in its process ----------------------------------------


def test_numpy_error_state_of_the_target_does_not_reach_the_verifier(tmp_path: Path) -> None:
    run = check(tmp_path, "seterr_raise.py", "--max-examples", "20")
    assert run.code == 0, run.out
    assert {r["status"] for r in run.doc["results"]} == {"passed", "skipped"}


def test_a_patched_np_exp_does_not_patch_the_reference(tmp_path: Path) -> None:
    run = check(tmp_path, "patched_exp.py", *only("matches_reference"))
    assert run.code == 1
    assert run.result("matches_reference")["status"] == "failed"


def test_random_draws_of_the_target_are_not_reseeded(tmp_path: Path) -> None:
    """NaN on one call in ten: found, whether as a failure that reproduced or as
    nondeterministic with its input, never a pass nor a FlakyFailure."""
    run = check(tmp_path, "random_nan.py", *only("finite_for_finite_input", "deterministic"))
    assert run.code == 1
    assert "Flaky" not in run.out
    for inv in ("finite_for_finite_input", "deterministic"):
        result = run.result(inv)
        assert result["status"] == "failed", result
        assert result["counterexample"] is not None


# --- processes -------------------------------------------------------------------------------


def started(tmp_path: Path, jobs: int) -> tuple[subprocess.Popen[str], str, Path]:
    """A command on the slow target at two dtypes, once its processes are running: the
    verifier and one child (``jobs=1``), or one lane process per dtype, each with its
    child (``jobs=2``)."""
    env, mark, tmp = environment(tmp_path)
    target = str(HOSTILE / "slow.py")
    command = [sys.executable, "-m", "softmax_verify", "check", target, "--jobs", str(jobs)]
    proc = subprocess.Popen(
        command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    # The command (the supervisor), its verifier, and one child, or a lane and its child
    # per dtype.
    processes = 3 if jobs == 1 else 2 + 2 * jobs
    deadline = time.monotonic() + 60.0
    while len(marked(mark)) < processes and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(marked(mark)) == processes, "the children did not start"
    time.sleep(1.0)  # into the checks
    return proc, mark, tmp


@pytest.mark.parametrize("jobs", [1, 2])
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
def test_the_child_dies_with_the_verifier(tmp_path: Path, signum: int, jobs: int) -> None:
    proc, mark, tmp = started(tmp_path, jobs)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=GUARD_SECONDS)
    assert proc.returncode != 0
    assert "Traceback" not in err
    assert_nothing_left(mark, tmp)


def test_a_timeout_of_the_users_own_script_leaves_nothing(tmp_path: Path) -> None:
    env, mark, tmp = environment(tmp_path)
    command = [sys.executable, "-m", "softmax_verify", "check", str(HOSTILE / "slow.py")]
    with pytest.raises(subprocess.TimeoutExpired):
        subprocess.run(command, env=env, cwd=ROOT, capture_output=True, timeout=4)
    assert_nothing_left(mark, tmp)


def test_a_helper_process_does_not_hide_a_crash(tmp_path: Path) -> None:
    """The helper holds every descriptor the child had: the crash is seen at once anyway,
    and the helper is stopped and named in the report."""
    argv = ("--dtype", "all", *only("rows_sum_to_one"), "--max-examples", "5")
    run = check(tmp_path, "forking_helper.py", *argv)
    assert run.code == 1
    assert run.result("rows_sum_to_one")["status"] == "passed"
    crashed = run.result("rows_sum_to_one", "float32")
    assert crashed["status"] == "error"
    assert crashed["message"].startswith("forward crashed the process (SIGSEGV, signal 11)")
    assert crashed["location"] == f"{here('forking_helper.py')} in forward"
    (note,) = run.doc["notes"]
    # One helper per child: a child per dtype (one each in two lanes, or one), and the one
    # where the diagnosis after the crash probes the target.
    assert re.match(r"the target left [1-3] process(es)? running \(pid ", note), note
    assert run.seconds < 100  # a hang guard: it was 137 s while the helper held the pipe


def test_a_multiprocessing_pool_works_in_the_target(tmp_path: Path) -> None:
    argv = (*only("rows_sum_to_one", "row_independence"), "--max-examples", "5")
    run = check(tmp_path, "pool.py", *argv)
    assert run.code == 0, run.out
    assert run.doc["passed"] is True
    # The pool is never closed: its workers that have not exited by then are stopped (how
    # many is a race with their own shutdown) and named.
    for note in run.doc["notes"]:
        assert note.startswith("the target left "), note


# --- hangs -------------------------------------------------------------------------------------


def test_an_uninterruptible_call_costs_the_time_limit_plus_a_few_seconds(tmp_path: Path) -> None:
    invariants = ("rows_sum_to_one", "outputs_in_unit_interval", "matches_reference")
    argv = ("--timeout", "0.5", "--dtype", "float64", *only(*invariants))
    run = check(tmp_path, "hang_in_c.py", *argv, fmt="json")
    assert run.code == 1
    where = here("hang_in_c.py")
    limits = []
    for inv in invariants:
        result = run.result(inv)
        assert result["status"] == "error"
        assert f"; the faulthandler dump shows it at {where} in forward" in result["message"]
        assert "C code" not in result["message"]
        assert result["location"] == f"{where} in forward"
        limits.append(result["message"].split("stopped after ")[1].split(" s")[0])
    # the full grace once; after that the same cause is not waited for again
    assert limits == [f"{0.5 + _remote.GRACE:.3g}", *[f"{0.5 + _remote.RETRY_GRACE:.3g}"] * 2]
    assert run.seconds < 90  # a hang guard: it was 3 x timeout + 60 s per invariant


# --- messages ----------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_a_lone_surrogate_in_a_message_is_one_escaped_line(tmp_path: Path, fmt: str) -> None:
    run = check(tmp_path, "surrogate_message.py", *only("rows_sum_to_one"), fmt=fmt)
    assert run.code == 1
    message = "forward raised ValueError: cannot read caf\\udce9.npy"
    if fmt == "json":
        assert run.result("rows_sum_to_one")["message"].startswith(message)
    else:
        assert message in run.out


def test_a_base_exception_subclass_is_a_one_line_error(tmp_path: Path) -> None:
    run = check(tmp_path, "base_exception.py", *only("rows_sum_to_one", "matches_reference"))
    assert run.code == 1
    for inv in ("rows_sum_to_one", "matches_reference"):
        assert run.result(inv)["message"].startswith("forward raised Abort: stop (at ")


def test_terminal_escape_codes_do_not_reach_the_text_report(tmp_path: Path) -> None:
    """Colours, a cursor move up and a line erased (which would let the message overwrite
    the report's line above), a window title, a bell, a carriage return: all gone, the
    words kept, on one line."""
    argv = (*only("rows_sum_to_one"), "--dtype", "float64")
    run = check(tmp_path, "escape_codes.py", *argv, fmt="text")
    assert run.code == 1
    assert "  forward raised ValueError: red alert PASSED (at " in run.out
    assert not any(ch in run.out for ch in "\x1b\x07\r\x9b")


def test_an_interrupt_at_import_names_the_exception_and_its_line(tmp_path: Path) -> None:
    run = check(tmp_path, "interrupt_at_import.py", *only("rows_sum_to_one"), "--jobs", "1")
    assert run.code == 1
    result = run.result("rows_sum_to_one")
    assert result["message"] == (
        "the target raised KeyboardInterrupt: stopped by the user while being loaded, "
        "before checking rows_sum_to_one at float64"
    )
    assert result["location"] == f"{here('interrupt_at_import.py')} in <module>"


def test_a_request_the_child_cannot_hold_is_read_to_its_end(tmp_path: Path) -> None:
    """The child cannot allocate one large request's bytes: that check is the verifier's
    own shortage, and the child, having read the frame to its end, serves the others."""
    argv = (*only("matches_reference", "rows_sum_to_one"), "--dtype", "float64")
    run = check(tmp_path, "child_cannot_hold_a_request.py", *argv)
    assert run.code == 1
    failed = run.result("matches_reference")
    assert failed["status"] == "error"
    assert failed["message"].startswith(
        "the verifier ran out of memory for its own arrays (MemoryError: the child ran out of "
        "memory for the arrays it was sent or read, outside the code's calls: MemoryError: "
        "cannot allocate"
    )
    assert run.result("rows_sum_to_one")["status"] == "passed"
    assert run.result("rows_sum_to_one")["examples"] > 1


def test_the_childs_own_memory_error_is_not_the_codes(tmp_path: Path) -> None:
    """The child cannot allocate an input it is sent (outside the code's calls): each
    invariant is an error saying the verifier ran out of memory, not that the code raised."""
    run = check(tmp_path, "child_out_of_memory.py", *only("matches_reference"))
    assert run.code == 1
    message = run.result("matches_reference")["message"]
    assert message.startswith(
        "the verifier ran out of memory for its own arrays (MemoryError: the child ran out of "
        "memory for the arrays it was sent or read, outside the code's calls: MemoryError: "
        "Unable to allocate 74.5 GiB"
    )
    assert "not an error of the code under test" in message
    assert "raised" not in message
