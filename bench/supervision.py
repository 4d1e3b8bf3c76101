"""The cost of stopping every process the target started: the reference's time to a
verdict by command, this checkout against a baseline revision's code, side by side.

The command now runs the verifier under a supervisor process (``isolation.supervisor``),
both child subreapers, and the verifier sweeps the child's whole process tree when it
stops it (``isolation.reaper``). Three commands on the bundled reference (ci profile,
float32 and float64, a fresh process each), interleaved round by round so that a noisy
neighbour slows them alike:

- ``BASELINE``'s code (``git archive BASELINE``, unpacked in a temporary folder and run
  from there: the command as it was before the subreaper);
- this checkout's command (``python -m softmax_verify``: supervisor and sweeps);
- this checkout's command line without its supervisor (``python -m softmax_verify.cli``:
  the sweeps only), which splits the cost in two.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from _common import ROOT, BenchOptions, Section, interleaved_medians, ratio, secs

__all__ = ["BASELINE", "supervision"]

#: The revision whose command is the "before": main as it was just before the subreaper and
#: supervisor landed (a branch name would compare main with itself once they are on it).
BASELINE = "05707c0"


def _baseline_tree(into: Path) -> Path:
    """``BASELINE``'s files, unpacked into ``into``; its top-level strategies/ folder linked
    where the installed package has it (``softmax_verify.strategies``)."""
    archive = into / "baseline.tar"
    with archive.open("wb") as out:
        subprocess.run(["git", "archive", BASELINE], cwd=ROOT, stdout=out, check=True)
    tree = into / "tree"
    with tarfile.open(archive) as tar:
        tar.extractall(tree, filter="data")
    (tree / "softmax_verify" / "strategies").symlink_to(tree / "strategies")
    return tree


def _run(module: str, cwd: Path, cap: int | None, docs: list[dict[str, Any]]) -> Callable[[], None]:
    """One timed ``python -m MODULE check`` on the bundled reference, run from ``cwd`` (its
    package is the one imported); its JSON report is appended to docs."""

    def run() -> None:
        command = [sys.executable, "-m", module, "check", "--format", "json"]
        if cap is not None:
            command += ["--max-examples", str(cap)]
        done = subprocess.run(command, capture_output=True, text=True, cwd=cwd, check=False)
        doc = json.loads(done.stdout) if done.stdout.strip() else {"results": []}
        doc.setdefault("passed", False)
        docs.append(doc)

    return run


def supervision(opts: BenchOptions) -> Section:
    """The reference's verdict time before and after the subreaper and supervisor."""
    cap = 20 if opts.quick else None
    rounds = 1 if opts.quick else 5
    section = Section(
        "Time to a verdict: the subreaper and supervisor's cost, ci profile",
        ("command (bundled reference, float32 and float64)", "examples", "wall time",
         f"/ {BASELINE}", "verdict"),
    )  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="softmax-verify-bench-") as tmp:
        baseline = _baseline_tree(Path(tmp))
        commands: Sequence[tuple[str, str, Path]] = (
            (f"`softmax-verify check`, {BASELINE}'s code", "softmax_verify", baseline),
            ("`softmax-verify check` (supervisor, subreapers, sweeps)", "softmax_verify", ROOT),
            ("`python -m softmax_verify.cli check` (sweeps, no supervisor)",
             "softmax_verify.cli", ROOT),
        )  # fmt: skip
        docs: list[list[dict[str, Any]]] = [[] for _ in commands]
        runs = [_run(m, cwd, cap, into) for (_, m, cwd), into in zip(commands, docs, strict=True)]
        walls = interleaved_medians(runs, rounds)
    for (label, _, _), wall, done in zip(commands, walls, docs, strict=True):
        last = done[-1]
        section.rows.append(
            [
                label,
                str(sum(r["examples"] for r in last["results"])),
                secs(wall),
                ratio(wall, walls[0]),
                "passed" if last["passed"] else "FAILED",
            ]
        )
    section.notes.append(
        f"medians of {rounds} interleaved rounds, each a fresh process; the ratio is the "
        f"command's time over {BASELINE}'s (above 1: slower)"
    )
    return section
