"""Time to a verdict on the bundled cross-entropy reference, beside the softmax reference.

``softmax-verify check --kind cross_entropy`` (float32 and float64, the ci profile; a fresh
process, the checks in an isolated child) and ``softmax-verify check`` on the softmax
reference, run interleaved round by round so that a noisy neighbour slows both alike. The
goal: the cross-entropy command under 10 s on a 2-core machine.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from typing import Any

from _common import ROOT, BenchOptions, Section, interleaved_medians, ratio, secs, timed_check

from softmax_verify import Options
from softmax_verify.core.result import Result
from softmax_verify.diagnosis import Diagnosis, diagnose
from softmax_verify.target.conventions import loss_implementation_from

__all__ = ["cross_entropy_diagnoses", "cross_entropy_verdicts"]

#: The two commands measured side by side (label, arguments of ``check``).
COMMANDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("`softmax-verify check --kind cross_entropy`", ("--kind", "cross_entropy")),
    ("`softmax-verify check` (softmax)", ()),
)


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
    runs = [
        timed_check("softmax_verify", argv, ROOT, cap, into)
        for (_, argv), into in zip(COMMANDS, docs, strict=True)
    ]
    before = os.getloadavg()[0]
    walls = interleaved_medians(runs, rounds)
    after = os.getloadavg()[0]
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
        f"{os.cpu_count()} cores, shared with other work: load average {before:.1f} at the "
        f"start, {after:.1f} at the end)"
    )
    if cap is not None:
        section.notes.append(f"--quick: at most {cap} examples per invariant")
    return section


#: The known-bad losses of tests/bad_ce_impls.py timed (one per catalogue id) and a correct one.
DIAGNOSED = (
    "not_averaged_loss",
    "label_indexing_loss",
    "no_max_shift_loss",
    "clip_1e12_loss",
    "log_of_softmax_loss",
    "sign_flipped_loss",
)


def _diagnosis(target: Any, found: list[tuple[Diagnosis, ...]]) -> Callable[[], None]:
    """One timed ``diagnose`` of ``target`` after a failure at float32 and float64 (in
    process); what it found is appended to ``found``."""
    chosen = Options(kind="cross_entropy")
    impl, _ = loss_implementation_from(target, None, chosen.read, chosen.loss, timeout=None)
    failed = [Result("matches_reference", d, "failed", 1, 0.0, "") for d in ("float32", "float64")]

    def run() -> None:
        found.append(diagnose(impl, failed, kind="cross_entropy"))

    return run


def cross_entropy_diagnoses(opts: BenchOptions) -> Section:
    """Wall time of the cross_entropy catalogue's ``diagnose``, per known-bad loss and on a
    correct one, interleaved."""
    sys.path.insert(0, str(ROOT / "tests"))  # as tests/conftest.py makes them importable
    bad_ce_impls = importlib.import_module("bad_ce_impls")
    ce_styles = importlib.import_module("ce_styles")

    rounds = 1 if opts.quick else 3
    targets = [(name, getattr(bad_ce_impls, name)) for name in DIAGNOSED]
    targets.append(("softmax_loss (correct)", ce_styles.softmax_loss))
    found: list[list[tuple[Diagnosis, ...]]] = [[] for _ in targets]
    runs = [_diagnosis(t, into) for (_, t), into in zip(targets, found, strict=True)]
    walls = interleaved_medians(runs, rounds)
    section = Section(
        "Time to a cross-entropy diagnosis (float32 and float64, in process)",
        ("loss", "diagnosis", "wall time"),
    )
    for (name, _), wall, done in zip(targets, walls, found, strict=True):
        names = ", ".join(dict.fromkeys(d.id for d in done[-1])) or "none"
        section.rows.append([name, names, secs(wall)])
    section.notes.append(
        f"medians of {rounds} interleaved rounds after a warm-up; {os.cpu_count()} cores, "
        "shared with other work; diagnose() stops probing after its 10 s budget"
    )
    return section
