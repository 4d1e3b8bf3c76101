"""Time to a verdict on the bundled cross-entropy reference, beside the softmax reference.

``softmax-verify check --kind cross_entropy`` (float32 and float64, the ci profile; a fresh
process, the checks in an isolated child) and ``softmax-verify check`` on the softmax
reference, run interleaved round by round so that a noisy neighbour slows both alike. The
goal: the cross-entropy command under 10 s on a 2-core machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from typing import Any

from _common import ROOT, BenchOptions, Section, interleaved_medians, ratio, secs

__all__ = ["cross_entropy_verdicts"]

#: The two commands measured side by side (label, arguments of ``check``).
COMMANDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("`softmax-verify check --kind cross_entropy`", ("--kind", "cross_entropy")),
    ("`softmax-verify check` (softmax)", ()),
)


def _run(argv: Sequence[str], cap: int | None, docs: list[dict[str, Any]]) -> Callable[[], None]:
    """One timed command on the bundled reference; its JSON report is appended to docs."""

    def run() -> None:
        command = [sys.executable, "-m", "softmax_verify", "check", "--format", "json", *argv]
        if cap is not None:
            command += ["--max-examples", str(cap)]
        done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False)
        doc = json.loads(done.stdout) if done.stdout.strip() else {"results": []}
        doc.setdefault("passed", False)
        docs.append(doc)

    return run


def cross_entropy_verdicts(opts: BenchOptions) -> Section:
    """The cross-entropy reference's time to a verdict by command, beside softmax's."""
    cap = 20 if opts.quick else None
    rounds = 1 if opts.quick else 3
    section = Section(
        "Time to a verdict: the cross-entropy reference beside softmax, ci profile",
        (
            "command (bundled reference, float32 and float64)",
            "invariants",
            "examples",
            "wall time",
            "goal",
            "verdict",
        ),
    )
    docs: list[list[dict[str, Any]]] = [[] for _ in COMMANDS]
    runs = [_run(argv, cap, into) for (_, argv), into in zip(COMMANDS, docs, strict=True)]
    walls = interleaved_medians(runs, rounds)
    for (label, _), wall, done in zip(COMMANDS, walls, docs, strict=True):
        last = done[-1]
        results = last["results"]
        section.rows.append(
            [
                label,
                str(len(results)),
                str(sum(r["examples"] for r in results)),
                secs(wall),
                "< 10 s" if "cross_entropy" in label else "",
                "passed" if last["passed"] else "FAILED",
            ]
        )
    section.notes.append(
        f"cross-entropy / softmax: {ratio(walls[0], walls[1])} (medians of {rounds} "
        f"interleaved rounds after a warm-up, process start and isolation included, "
        f"{os.cpu_count()} cores, shared with other work)"
    )
    if cap is not None:
        section.notes.append(f"--quick: at most {cap} examples per invariant")
    return section
