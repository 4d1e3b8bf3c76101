"""What every section of the bench shares: its command-line options, the markdown table,
the timing loops and the formatting of times and ratios.

bench/ is not a package: ``python bench/bench.py`` puts bench/ first on sys.path, so the
section modules import this one, and each other, by their bare names.
"""

from __future__ import annotations

import importlib
import json
import math
import random
import statistics
import subprocess
import sys
import time
import timeit
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from numpy.typing import NDArray

from softmax_verify.core.extras import install_hint

ROOT = Path(__file__).resolve().parent.parent
Array = NDArray[Any]


@dataclass
class BenchOptions:
    """The bench's command line (not softmax_verify's run Options, imported as RunOptions)."""

    quick: bool
    repeat: int
    output: Path
    only: str | None = None


@dataclass
class Section:
    """One markdown table, with notes printed under it."""

    title: str
    header: Sequence[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def markdown(self) -> str:
        lines = [f"### {self.title}", ""]
        lines.append("| " + " | ".join(self.header) + " |")
        lines.append("|" + "|".join("---" for _ in self.header) + "|")
        lines.extend("| " + " | ".join(row) + " |" for row in self.rows)
        if self.notes:
            lines.append("")
            lines.extend(f"- {note}" for note in self.notes)
        return "\n".join(lines) + "\n"


def optional(module: str) -> Any | None:
    """The module, or None when it is not installed."""
    try:
        return importlib.import_module(module)
    except ImportError:
        return None


def median_seconds(func: Callable[[], object], repeat: int) -> float:
    """Median over ``repeat`` timed calls (one call each; the first, warm-up call untimed)."""
    func()
    return statistics.median(timeit.Timer(func).repeat(repeat=repeat, number=1))


def interleaved_medians(funcs: Sequence[Callable[[], object]], repeat: int) -> list[float]:
    """Medians over ``repeat`` rounds, each timing every function once (after one untimed
    warm-up call each), so that a noisy neighbour slows all of them alike, not one of them.

    Each round runs the functions in a fresh random order (seeded: the same for every run of
    the bench). A fixed or rotated cyclic order would always run a function right after the
    same other one, which leaves its own inputs in cache when both read the same arrays:
    with a rotation, the straightforward backward always followed the reference's, which had
    just read g and y, and the reference's forward always followed numpy.exp of its x.
    """
    for func in funcs:
        func()
    order = random.Random(len(funcs) * 1000 + repeat)
    times: list[list[float]] = [[] for _ in funcs]
    for _ in range(repeat):
        for i in order.sample(range(len(funcs)), len(funcs)):
            times[i].append(once(funcs[i]))
    return [statistics.median(t) for t in times]


def once(func: Callable[[], object]) -> float:
    """The wall time of one call of ``func``, in seconds."""
    start = time.perf_counter()
    func()
    return time.perf_counter() - start


def system_share(func: Callable[[], object]) -> str:
    """One more call of ``func``: its wall time, the CPU time of the process (user and
    system, all threads) and its minor page faults, which say how much of the time went
    to the kernel handing out fresh memory."""
    try:
        import resource
    except ImportError:  # not on every platform
        return "not measured (no resource module)"
    before = resource.getrusage(resource.RUSAGE_SELF)
    wall = once(func)
    after = resource.getrusage(resource.RUSAGE_SELF)
    return (
        f"{wall:.2f} s wall, {after.ru_utime - before.ru_utime:.2f} s user, "
        f"{after.ru_stime - before.ru_stime:.2f} s system, "
        f"{after.ru_minflt - before.ru_minflt} minor page faults"
    )


def ms(seconds: float) -> str:
    """A time for a table cell: milliseconds under 10 s, seconds above, "n/a" for NaN."""
    if math.isnan(seconds):
        return "n/a"
    return f"{seconds * 1e3:.1f} ms" if seconds < 10 else f"{seconds:.1f} s"


def secs(seconds: float) -> str:
    """A time in seconds for a table cell (three decimals under 10 s)."""
    return f"{seconds:.3f} s" if seconds < 10 else f"{seconds:.1f} s"


def ratio(other: float, ours: float) -> str:
    """``other / ours`` for a table cell, "n/a" when either is missing."""
    if math.isnan(other) or math.isnan(ours) or ours <= 0:
        return "n/a"
    return f"{other / ours:.2f}x"


def ratios(times: Sequence[float]) -> list[str]:
    """For [floor, ours, a, b, c]: [ours / floor, a / ours, b / ours, c / ours]."""
    return [ratio(times[1], times[0]), *(ratio(t, times[1]) for t in times[2:])]


def missing(name: str) -> str:
    """The note for an optional framework that is not installed."""
    return f"{name} not installed ({install_hint(name)}): not measured"


def timed_check(
    module: str, argv: Sequence[str], cwd: Path, cap: int | None, docs: list[dict[str, Any]]
) -> Callable[[], None]:
    """One timed ``python -m MODULE check --format json ARGV`` on the bundled reference, run
    from ``cwd`` (its package is the one imported); its JSON report is appended to docs (a
    run that printed nothing counts as failed)."""

    def run() -> None:
        command = [sys.executable, "-m", module, "check", "--format", "json", *argv]
        if cap is not None:
            command += ["--max-examples", str(cap)]
        done = subprocess.run(command, capture_output=True, text=True, cwd=cwd, check=False)
        doc = json.loads(done.stdout) if done.stdout.strip() else {"results": []}
        doc.setdefault("passed", False)
        docs.append(doc)

    return run
