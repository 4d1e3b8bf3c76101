"""log_softmax against softmax: the time to a verdict on each kind's bundled reference, side by
side (``--only kinds``).

The goal (issue: log_softmax at softmax's level) is a log_softmax verdict within 1.5x of the
softmax one. Both are measured the way a user runs them and in process: the command
``softmax-verify check`` with no target and ``--kind softmax`` or ``--kind log_softmax`` (its
bundled reference; float32 and float64, one lane per core, the checks in an isolated child),
and ``verify`` of each reference in this process (both dtypes, one after the other). The
runs are interleaved round by round (``_common.interleaved_medians``), so a neighbour's load
slows both alike, and the machine's load average is stated before and after.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable

from _common import ROOT, BenchOptions, Section, interleaved_medians, ratio, secs

import softmax_verify
from softmax_verify.bundled.reference import (
    log_softmax,
    log_softmax_backward,
    softmax,
    softmax_backward,
)

#: The goal: log_softmax's verdict takes at most this many times softmax's.
GOAL = 1.5
KINDS = ("softmax", "log_softmax")


def _load() -> str:
    """The 1, 5 and 15 minute load averages, or why not."""
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:  # not on every platform
        return "not measured"
    return f"{one:.2f}, {five:.2f}, {fifteen:.2f}"


def _command(kind: str, cap: int | None, verdicts: dict[str, str]) -> Callable[[], None]:
    """One timed ``softmax-verify check --kind KIND`` (no target: the bundled reference)."""

    def run() -> None:
        command = [sys.executable, "-m", "softmax_verify", "check", "--kind", kind]
        command += ["--format", "json"] + ([] if cap is None else ["--max-examples", str(cap)])
        done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False)
        doc = json.loads(done.stdout) if done.stdout.strip() else {}
        verdicts[f"command {kind}"] = "passed" if doc.get("passed") else "FAILED"

    return run


def _in_process(kind: str, cap: int | None, verdicts: dict[str, str]) -> Callable[[], None]:
    """One timed ``verify`` of the kind's bundled reference, float32 and float64."""
    pair = (softmax, softmax_backward) if kind == "softmax" else (log_softmax, log_softmax_backward)

    def run() -> None:
        report = softmax_verify.verify(*pair, kind=kind, profile="ci", max_examples=cap)
        verdicts[f"verify {kind}"] = "passed" if report.passed else "FAILED"

    return run


def kinds(opts: BenchOptions) -> Section:
    """The table: per kind, the command's and verify's median wall time, and the ratios."""
    cap = 20 if opts.quick else None
    rounds = 1 if opts.quick else 5
    section = Section(
        "Time to a verdict: log_softmax against softmax (bundled references, ci profile)",
        ("run", "softmax", "log_softmax", "log_softmax / softmax", "goal", "verdicts"),
    )
    before = _load()
    verdicts: dict[str, str] = {}
    runs = [_command(kind, cap, verdicts) for kind in KINDS]
    runs += [_in_process(kind, cap, verdicts) for kind in KINDS]
    walls = interleaved_medians(runs, rounds)
    for label, key, (soft, log) in (
        ("`softmax-verify check --kind KIND` (float32 and float64)", "command", walls[:2]),
        ("`verify(reference of KIND)` in process (float32 and float64)", "verify", walls[2:]),
    ):
        section.rows.append(
            [
                label,
                secs(soft),
                secs(log),
                ratio(log, soft),
                f"<= {GOAL}x",
                ", ".join(verdicts.get(f"{key} {kind}", "not run") for kind in KINDS),
            ]
        )
    section.notes.append(
        f"medians of {rounds} interleaved rounds (each round runs the four in a fresh random "
        f"order) on {os.cpu_count()} cores shared with other work; load average (1, 5, 15 "
        f"min) {before} before, {_load()} after"
    )
    if cap is not None:
        section.notes.append(f"--quick: at most {cap} examples per invariant")
    return section
