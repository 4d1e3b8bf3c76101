"""The cost of the verdict's integrity defences: the reference's time to a verdict by
command, each defence's "before" and "after" revisions side by side.

Two defences are measured, each against the revision just before it:

- the bounded reads: every reply of the child, header and body, read under the call's
  deadline (``isolation.frames``), added by ``BOUNDED_READS[1]`` on top of
  ``BOUNDED_READS[0]``;
- the subreaper: the command runs the verifier under a supervisor process
  (``isolation.supervisor``), both child subreapers, and the verifier sweeps the child's
  whole process tree when it stops it (``isolation.reaper``); ``SUBREAPER_BASELINE`` is
  main just before they landed, against this checkout's command (``python -m
  softmax_verify``) and its command line without the supervisor (``python -m
  softmax_verify.cli``: the sweeps only), which splits the cost in two.

Every command checks the bundled reference (ci profile, float32 and float64, a fresh
process each); a revision's code is run from ``git archive REV`` unpacked in a temporary
folder. All five are interleaved round by round so that a noisy neighbour slows them alike.
"""

from __future__ import annotations

import subprocess
import tarfile
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from _common import ROOT, BenchOptions, Section, interleaved_medians, ratio, secs, timed_check

__all__ = ["BOUNDED_READS", "SUBREAPER_BASELINE", "supervision"]

#: The revision just before the bounded reads, and the one that added them.
BOUNDED_READS = ("752eecf", "bedb35e")

#: Main just before the subreaper and supervisor landed (a branch name would compare main
#: with itself once they are on it).
SUBREAPER_BASELINE = "05707c0"


def _tree(revision: str, into: Path) -> Path:
    """``revision``'s files, unpacked into a folder of ``into``; its top-level strategies/
    folder linked where the installed package has it (``softmax_verify.strategies``)."""
    archive = into / f"{revision}.tar"
    with archive.open("wb") as out:
        subprocess.run(["git", "archive", revision], cwd=ROOT, stdout=out, check=True)
    tree = into / revision
    with tarfile.open(archive) as tar:
        tar.extractall(tree, filter="data")
    (tree / "softmax_verify" / "strategies").symlink_to(tree / "strategies")
    return tree


def _commands(tmp: Path) -> Sequence[tuple[str, str, Path, int]]:
    """(label, module, folder it runs from, index of its "before" row) of each command."""
    before, after = BOUNDED_READS
    return (
        (f"`softmax-verify check`, {before}'s code", "softmax_verify", _tree(before, tmp), 0),
        (f"`softmax-verify check`, {after}'s code (bounded reads)", "softmax_verify",
         _tree(after, tmp), 0),
        (f"`softmax-verify check`, {SUBREAPER_BASELINE}'s code", "softmax_verify",
         _tree(SUBREAPER_BASELINE, tmp), 2),
        ("`softmax-verify check` (supervisor, subreapers, sweeps)", "softmax_verify", ROOT, 2),
        ("`python -m softmax_verify.cli check` (sweeps, no supervisor)", "softmax_verify.cli",
         ROOT, 2),
    )  # fmt: skip


def supervision(opts: BenchOptions) -> Section:
    """The reference's verdict time before and after the bounded reads, and before and after
    the subreaper and supervisor."""
    cap = 20 if opts.quick else None
    rounds = 1 if opts.quick else 5
    section = Section(
        "Time to a verdict: the bounded reads' and the subreaper's cost, ci profile",
        ("command (bundled reference, float32 and float64)", "examples", "wall time",
         "/ before", "verdict"),
    )  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="softmax-verify-bench-") as tmp:
        commands = _commands(Path(tmp))
        docs: list[list[dict[str, Any]]] = [[] for _ in commands]
        runs = [
            timed_check(module, (), cwd, cap, into)
            for (_, module, cwd, _), into in zip(commands, docs, strict=True)
        ]
        walls = interleaved_medians(runs, rounds)
    for (label, _, _, base), wall, done in zip(commands, walls, docs, strict=True):
        last = done[-1]
        section.rows.append(
            [
                label,
                str(sum(r["examples"] for r in last["results"])),
                secs(wall),
                ratio(wall, walls[base]),
                "passed" if last["passed"] else "FAILED",
            ]
        )
    section.notes.append(
        f"medians of {rounds} interleaved rounds, each a fresh process; the ratio is the "
        f"command's time over its before's: {BOUNDED_READS[0]} for the bounded reads, "
        f"{SUBREAPER_BASELINE} for the rest (above 1: slower)"
    )
    return section
