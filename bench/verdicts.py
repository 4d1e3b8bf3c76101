"""Times to a verdict and to a diagnosis: the reference in process and by the command line,
then each known-bad implementation of tests/bad_impls.py until its first expected failure,
and ``diagnose`` after the failures."""

from __future__ import annotations

import functools
import importlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

import numpy as np
from _common import ROOT, BenchOptions, Section, interleaved_medians, median_seconds, ratio, secs

import softmax_verify
from softmax_verify.bundled.reference import softmax, softmax_backward
from softmax_verify.core.options import Options as RunOptions
from softmax_verify.diagnosis import diagnose
from softmax_verify.isolation.remote import RemoteImplementation
from softmax_verify.run.plan import RunPlan
from softmax_verify.run.runner import run_invariant
from softmax_verify.run.sharing import shared_groups
from softmax_verify.target.load import TargetSpec
from softmax_verify.target.local import LocalImplementation

#: The command a user runs: a fresh process, the implementation in a child (isolated), long
#: rows and block boundaries included; at float64, and at the default two dtypes side by
#: side (one lane per core) and one after the other (--jobs 1). Label -> extra arguments.
COMMANDS: dict[str, list[str]] = {
    "`softmax-verify check --dtype float64`": ["--dtype", "float64"],
    "`softmax-verify check` (float32 and float64, one lane per core)": [],
    "`softmax-verify check --jobs 1` (float32 and float64, one process)": ["--jobs", "1"],
}


def known_bad() -> ModuleType:
    """tests/bad_impls.py, imported as tests/conftest.py makes it importable."""
    sys.path.insert(0, str(ROOT / "tests"))
    return importlib.import_module("bad_impls")


def round_trip(repeat: int) -> str:
    """The cost of the child process per call: ``forward`` and ``vjp`` of the reference on
    a (16, 32) float64 input, in process and through the child (medians, in microseconds)."""
    x = np.random.default_rng(0).standard_normal((16, 32))
    local = LocalImplementation(softmax, softmax_backward)
    remote = RemoteImplementation(TargetSpec(None))
    remote.load()
    times = []
    try:
        for impl in (local, remote):
            times.append(median_seconds(functools.partial(impl.forward, x), repeat) * 1e6)
        for impl in (local, remote):
            times.append(median_seconds(functools.partial(impl.vjp, x, x), repeat) * 1e6)
    finally:
        remote.close()
    return (
        f"per call, (16, 32) float64: forward {times[0]:.0f} us in process, {times[1]:.0f} us "
        f"through the child; forward then backward (vjp) {times[2]:.0f} us and {times[3]:.0f} us"
    )


def verdicts(opts: BenchOptions) -> tuple[Section, Section]:
    """The reference's verdict table (in process, then by command) and the known-bad one."""
    bad_impls = known_bad()
    cap = 20 if opts.quick else None
    good = Section(
        "Time to a verdict: the reference, ci profile",
        ("target", "invariants", "examples", "wall time", "verdict"),
    )
    report = _in_process(opts, cap, good)
    _commands(opts, cap, good)
    good.notes.append(round_trip(20 if opts.quick else 200))
    slowest = sorted(report.results, key=lambda r: r.seconds, reverse=True)[:3]
    good.notes.append(
        "slowest invariants: "
        + ", ".join(f"{r.invariant} {r.seconds:.1f} s ({r.examples} examples)" for r in slowest)
    )
    bad = _first_failures(bad_impls, cap)
    if cap is not None:
        for section in (good, bad):
            section.notes.append(f"--quick: at most {cap} examples per invariant")
    return good, bad


def _in_process(opts: BenchOptions, cap: int | None, good: Section) -> softmax_verify.Report:
    """Times verify() and each invariant alone, interleaved, into good; returns the report."""
    # As verify() runs (invariants that draw the same cases share one stream of examples,
    # softmax_verify.run.sharing), and each (invariant, dtype) pair in a property of its
    # own, as runs were before that sharing: the same checks on the same examples.
    reports: list[softmax_verify.Report] = []
    plan = RunPlan.build(RunOptions(profile="ci", max_examples=cap))
    alone_results: list[softmax_verify.Result] = []

    def shared() -> None:
        reports.append(
            softmax_verify.verify(softmax, softmax_backward, profile="ci", max_examples=cap)
        )

    def alone() -> None:
        impl = LocalImplementation(softmax, softmax_backward)
        alone_results[:] = [
            run_invariant(inv, impl, dt, profile="ci", max_examples=cap) for inv, dt in plan.pairs
        ]

    in_process = interleaved_medians([shared, alone], 1 if opts.quick else 3)
    report = reports[-1]
    for label, results, wall in (
        ("`verify(softmax, softmax_backward)`", report.results, in_process[0]),
        ("each invariant alone (`run_invariant` per pair)", alone_results, in_process[1]),
    ):
        good.rows.append(
            [
                f"{label} (float32 and float64, in process)",
                str(len(results)),
                str(sum(r.examples for r in results)),
                secs(wall),
                "passed" if all(r.status != "failed" for r in results) else "FAILED",
            ]
        )
    groups = len(shared_groups(plan.pairs))
    good.notes.append(
        "In process, shared cases against each invariant alone: "
        f"{ratio(in_process[1], in_process[0])} ({groups} properties instead of "
        f"{len(plan.pairs)}; every invariant still checks each example, the column's count)."
    )
    return report


def _commands(opts: BenchOptions, cap: int | None, good: Section) -> None:
    """Times the COMMANDS on the reference, interleaved, into good's rows and lanes note."""
    docs: dict[str, dict[str, Any]] = {}
    runs = [_command_run(label, argv, cap, docs) for label, argv in COMMANDS.items()]
    walls = interleaved_medians(runs, 1 if opts.quick else 3)
    for (label, _), wall in zip(COMMANDS.items(), walls, strict=True):
        doc = docs[label]
        good.rows.append(
            [
                f"{label} (reference, process start and isolation included)",
                str(len(doc["results"])),
                str(sum(r["examples"] for r in doc["results"])),
                secs(wall),
                "passed" if doc["passed"] else "FAILED",
            ]
        )
    good.notes.append(
        f"two dtypes: one process / lanes = {ratio(walls[2], walls[1])} (medians of "
        f"{1 if opts.quick else 3} interleaved runs, {os.cpu_count()} cores)"
    )


def _command_run(
    label: str, argv: Sequence[str], cap: int | None, docs: dict[str, dict[str, Any]]
) -> Callable[[], None]:
    """One timed run of softmax-verify check with argv; its JSON report goes to docs[label]."""

    def run() -> None:
        command = [sys.executable, "-m", "softmax_verify", "check", "--format", "json", *argv]
        if cap is not None:
            command += ["--max-examples", str(cap)]
        done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False)
        docs[label] = json.loads(done.stdout) if done.stdout.strip() else {"results": []}
        docs[label].setdefault("passed", False)

    return run


def _first_failures(bad_impls: ModuleType, cap: int | None) -> Section:
    """The known-bad table: each implementation's time and examples to its first failure."""
    bad = Section(
        "Time to a verdict: known-bad implementations (tests/bad_impls.py), ci profile",
        (
            "implementation",
            "dtype",
            "first failing invariant",
            "status",
            "examples (incl. shrinking)",
            "time",
            "invariants run",
        ),
    )
    for entry in bad_impls.BAD:
        bad.rows.append(_first_failure(entry, cap))
    bad.notes.append(
        "Expected invariants are run in the order tests/bad_impls.py lists them, each at the "
        "entry's first dtype, until one fails; examples and time add up over those run and "
        "include Hypothesis shrinking to the minimal counterexample."
    )
    return bad


def _first_failure(entry: Any, cap: int | None) -> list[str]:
    """One known-bad row: its expected invariants in order at its first dtype, until one fails."""
    impl = LocalImplementation(entry.forward, entry.backward, name=entry.name)
    dtype = entry.dtypes[0]
    examples, seconds, ran = 0, 0.0, 0
    found = None
    for invariant in entry.fails:
        result = run_invariant(invariant, impl, dtype, profile="ci", max_examples=cap)
        examples, seconds, ran = examples + result.examples, seconds + result.seconds, ran + 1
        if result.status in ("failed", "error"):
            found = result
            break
    return [
        entry.name,
        dtype,
        found.invariant if found is not None else "NONE (all expected invariants held)",
        found.status if found is not None else "-",
        str(examples),
        secs(seconds),
        f"{ran} of {len(entry.fails)}",
    ]


def diagnoses(opts: BenchOptions) -> Section:
    """Wall time of ``diagnose`` after a failure: per known-bad implementation, on its first
    failing invariant at both dtypes, and for the notebook after every invariant failed."""
    bad_impls = known_bad()
    cap = 20 if opts.quick else None
    section = Section(
        "Time to a diagnosis (after the failures; not part of a passing run)",
        ("implementation", "failures diagnosed", "diagnosis", "wall time"),
    )
    both = ("float64", "float32")
    for entry in bad_impls.BAD:
        impl = LocalImplementation(entry.forward, entry.backward, name=entry.name)
        results = [
            run_invariant(entry.fails[0], impl, dtype, profile="ci", max_examples=cap)
            for dtype in both
        ]
        start = time.perf_counter()
        found = diagnose(impl, results, both)
        wall = time.perf_counter() - start
        failures = sum(r.status in ("failed", "error") for r in results)
        names = ", ".join(dict.fromkeys(d.id for d in found)) or "no known pattern"
        section.rows.append([entry.name, str(failures), names, secs(wall)])
    report = softmax_verify.verify(
        bad_impls.notebook_forward, bad_impls.notebook_backward, dtypes=both, max_examples=cap
    )
    impl = LocalImplementation(bad_impls.notebook_forward, bad_impls.notebook_backward)
    start = time.perf_counter()
    found = diagnose(impl, report.results, both)
    wall = time.perf_counter() - start
    names = ", ".join(dict.fromkeys(d.id for d in found)) or "no known pattern"
    section.rows.append(["notebook, every invariant", str(len(report.failures)), names, secs(wall)])
    section.notes.append(
        "diagnose() probes the formulas (a fixed set of calls per dtype) and re-runs each "
        "failing invariant on its region families; its wall time grows with the failures."
    )
    return section
