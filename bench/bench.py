"""Benchmarks of softmax-verify, side by side in one process (``make bench``).

What is measured (medians of repeats, wall time, the candidates of a table interleaved
round by round so that a noisy neighbour slows them alike; ratios are "other / ours",
so above 1 means softmax-verify is faster, except "ref / exp": the reference over the
``numpy.exp`` floor):

1. The reference ``softmax`` and ``softmax_backward`` against ``scipy.special.softmax``,
   ``torch.softmax`` (CPU, torch's default thread count), ``jax.nn.softmax`` (jitted,
   ``block_until_ready``), the straightforward numpy backward
   ``y * (g - (g * y).sum(1, keepdims=True))`` and one bare ``numpy.exp`` pass (the
   floor), on (1024, 1024), (4096, 4096), (65536, 64) and (64, 65536), float32 and float64.
2. ``full_jacobian_check`` against ``torch.autograd.gradcheck`` (default mode) on the
   same float64 input at 32x32, 64x64 and 128x128.
3. ``directional_check`` against ``torch.autograd.gradcheck(fast_mode=True)`` at
   1024x1024 and 4096x4096 float64.
4. Time to a verdict: ``verify(softmax, softmax_backward)`` in process and the command
   ``softmax-verify check`` (a fresh process, the checks in an isolated child) on the
   reference under the ci profile, and for each known-bad implementation in
   tests/bad_impls.py the time and examples until its first expected invariant fails
   (``run_invariant``, ci profile).
5. Time to a diagnosis: ``diagnose`` after each known-bad implementation's first
   expected failure (both dtypes), and after the notebook's full run.

``--quick`` is a smoke run: fewer repeats, no 4096x4096 shapes, no torch gradcheck at
128x128, and verdicts capped at 20 examples per invariant. The tables are printed as
markdown and written to bench/results.md (``--output`` to change it).
"""

from __future__ import annotations

import argparse
import functools
import importlib
import json
import math
import os
import platform
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

import numpy as np
from numpy.typing import NDArray

import softmax_verify
import softmax_verify.core.parallel as parallel
from softmax_verify.bundled.reference import softmax, softmax_backward
from softmax_verify.core.extras import install_hint
from softmax_verify.core.options import Options as RunOptions
from softmax_verify.diagnosis import diagnose
from softmax_verify.gradcheck import directional_check, full_jacobian_check
from softmax_verify.isolation.remote import RemoteImplementation
from softmax_verify.run.plan import RunPlan
from softmax_verify.run.runner import run_invariant
from softmax_verify.run.sharing import shared_groups
from softmax_verify.target.frameworks import adapter
from softmax_verify.target.load import TargetSpec
from softmax_verify.target.local import LocalImplementation

ROOT = Path(__file__).resolve().parent.parent
Array = NDArray[Any]
SHAPES: tuple[tuple[int, int], ...] = ((1024, 1024), (4096, 4096), (65536, 64), (64, 65536))
DTYPES: tuple[type[np.floating[Any]], ...] = (np.float32, np.float64)
FULL_SIZES = (32, 64, 128)
DIRECTIONAL_SIZES = (1024, 4096)


@dataclass
class Options:
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
    if math.isnan(seconds):
        return "n/a"
    return f"{seconds * 1e3:.1f} ms" if seconds < 10 else f"{seconds:.1f} s"


def secs(seconds: float) -> str:
    return f"{seconds:.3f} s" if seconds < 10 else f"{seconds:.1f} s"


def ratio(other: float, ours: float) -> str:
    if math.isnan(other) or math.isnan(ours) or ours <= 0:
        return "n/a"
    return f"{other / ours:.2f}x"


def ratios(times: Sequence[float]) -> list[str]:
    """For [floor, ours, a, b, c]: [ours / floor, a / ours, b / ours, c / ours]."""
    return [ratio(times[1], times[0]), *(ratio(t, times[1]) for t in times[2:])]


def missing(name: str) -> str:
    return f"{name} not installed ({install_hint(name)}): not measured"


def machine(torch: Any, jax: Any, scipy: Any) -> Section:
    section = Section("Machine", ("item", "value"))
    coretype = os.environ.get("OPENBLAS_CORETYPE")
    rows = [
        ("platform", platform.platform()),
        ("processor", platform.processor() or platform.machine()),
        ("CPU count", str(os.cpu_count())),
        ("python", platform.python_version()),
        ("numpy", np.__version__),
        ("scipy", scipy.__version__ if scipy is not None else "not installed"),
        (
            "torch",
            f"{torch.__version__} ({torch.get_num_threads()} threads, the default)"
            if torch is not None
            else "not installed",
        ),
        ("jax", jax.__version__ if jax is not None else "not installed"),
        ("softmax-verify", softmax_verify.__version__),
        ("OPENBLAS_CORETYPE", f"set ({coretype})" if coretype else "not set"),
    ]
    section.rows = [[name, value] for name, value in rows]
    return section


def straightforward_backward(g: Array, y: Array) -> Array:
    out: Array = y * (g - (g * y).sum(axis=1, keepdims=True))
    return out


def time_kernels(
    x: Array,
    g: Array,
    repeat: int,
    scipy: Any,
    torch: Any,
    torch_backward: Any,
    jnp: Any,
    jit_forward: Any,
    jit_backward: Any,
) -> tuple[list[float], list[float]]:
    """Medians (seconds): forward [exp, reference, scipy, torch, jax] and backward
    [exp, reference, straightforward, torch, jax]; NaN where a framework is missing."""
    nan = float("nan")
    y = softmax(x)
    funcs: dict[str, Callable[[], object]] = {
        "exp": lambda: np.exp(x),
        "forward": lambda: softmax(x),
        "backward": lambda: softmax_backward(g, y),
        "straightforward": lambda: straightforward_backward(g, y),
    }
    if scipy is not None:
        special = scipy.special
        funcs["scipy"] = lambda: special.softmax(x, axis=1)
    if torch is not None:
        xt, gt, yt = (torch.from_numpy(a) for a in (x, g, y))
        funcs["torch"] = lambda: torch.softmax(xt, dim=1)
        if torch_backward is not None:
            funcs["torch backward"] = lambda: torch_backward(gt, yt, 1, yt.dtype)
    if jnp is not None:
        xj, gj, yj = (jnp.asarray(a) for a in (x, g, y))
        funcs["jax"] = lambda: jit_forward(xj).block_until_ready()
        funcs["jax backward"] = lambda: jit_backward(gj, yj).block_until_ready()
    t = dict(zip(funcs, interleaved_medians(list(funcs.values()), repeat), strict=True))
    forward = [t["exp"], t["forward"], t.get("scipy", nan), t.get("torch", nan), t.get("jax", nan)]
    backward = [
        t["exp"],
        t["backward"],
        t["straightforward"],
        t.get("torch backward", nan),
        t.get("jax backward", nan),
    ]
    return forward, backward


def kernels(opts: Options, torch: Any, jax: Any, scipy: Any) -> tuple[Section, Section]:
    forward = Section(
        "Forward: softmax along axis 1",
        (
            "shape",
            "dtype",
            "numpy.exp (floor)",
            "reference",
            "scipy",
            "torch",
            "jax (jit)",
            "ref / exp",
            "scipy / ref",
            "torch / ref",
            "jax / ref",
        ),
    )
    backward = Section(
        "Backward: dx = y * (g - <g, y>) given y",
        (
            "shape",
            "dtype",
            "numpy.exp (floor)",
            "reference",
            "straightforward numpy",
            "torch",
            "jax (jit)",
            "ref / exp",
            "straightforward / ref",
            "torch / ref",
            "jax / ref",
        ),
    )
    jnp = None
    jit_forward: Any = None
    jit_backward: Any = None
    if jax is not None:
        jax.config.update("jax_enable_x64", True)  # float64 must really be float64
        jnp = importlib.import_module("jax.numpy")
        jit_forward = jax.jit(lambda a: jax.nn.softmax(a, axis=1))
        jit_backward = jax.jit(lambda g, y: y * (g - jnp.sum(g * y, axis=1, keepdims=True)))
    torch_backward: Any = None
    if torch is not None:
        torch_backward = getattr(torch.ops.aten, "_softmax_backward_data", None)
    shapes = [s for s in SHAPES if not (opts.quick and s == (4096, 4096))]
    rng = np.random.default_rng(0)
    for shape in shapes:
        for dtype in DTYPES:
            x = (rng.standard_normal(shape) * 3).astype(dtype)
            g = rng.standard_normal(shape).astype(dtype)
            repeat = max(3, opts.repeat // 3) if shape == (4096, 4096) else opts.repeat
            f, b = time_kernels(
                x, g, repeat, scipy, torch, torch_backward, jnp, jit_forward, jit_backward
            )
            name = np.dtype(dtype).name
            forward.rows.append([str(shape), name, *(ms(t) for t in f), *ratios(f)])
            backward.rows.append([str(shape), name, *(ms(t) for t in b), *ratios(b)])
            print(f"  kernels {shape} {name} done", file=sys.stderr, flush=True)
    for section in (forward, backward):
        section.notes.append(
            "ref / exp: the reference's time over one numpy.exp pass on the same array "
            "(allocating its output, as the reference does); the floor is 1.00x."
        )
        section.notes.append(
            f"Medians of {opts.repeat} rounds; each round times every candidate of the shape "
            "once (forward and backward tables alike), in a random order drawn afresh each "
            "round, so that no candidate always runs right after one that left its inputs in "
            "cache."
        )
        if torch is None:
            section.notes.append(missing("torch"))
        else:
            section.notes.append(
                f"torch runs on {torch.get_num_threads()} threads (its default); numpy and "
                "scipy on one; the reference's softmax on up to "
                f"{parallel.threads()} for arrays of 8 MiB and more, its backward on one."
            )
        if jax is None:
            section.notes.append(missing("jax"))
        if scipy is None and section is forward:
            section.notes.append(missing("scipy"))
    if torch is not None and torch_backward is None:
        backward.notes.append("torch.ops.aten._softmax_backward_data unavailable: not measured")
    if jax is not None:
        backward.notes.append("jax: the same formula, jitted (what jax.vjp of softmax computes).")
    if opts.quick:
        forward.notes.append("--quick: (4096, 4096) skipped")
    return forward, backward


def time_full(
    forward: Callable[..., Any], backward: Callable[..., Any], x: Array, repeat: int
) -> float:
    result = full_jacobian_check(forward, backward, x)
    if not result.passed:
        raise AssertionError(f"full_jacobian_check rejected a correct softmax: {result}")
    return median_seconds(lambda: full_jacobian_check(forward, backward, x), repeat)


def directional_run(x: Array, directions: int, pair: Any = None) -> Callable[[], None]:
    forward, backward = pair if pair is not None else (softmax, softmax_backward)

    def run() -> None:
        result = directional_check(forward, backward, x, directions=directions)
        if not result.passed:
            raise AssertionError(f"directional_check rejected a correct softmax: {result}")

    return run


def torch_softmax_gradcheck(torch: Any, x: Array, fast: bool) -> Callable[[], bool]:
    t = torch.from_numpy(x.copy()).requires_grad_(True)

    def run() -> bool:
        return bool(
            torch.autograd.gradcheck(lambda a: torch.softmax(a, dim=1), (t,), fast_mode=fast)
        )

    return run


def gradchecks(opts: Options, torch: Any) -> tuple[Section, Section]:
    full = Section(
        "Full Jacobian: full_jacobian_check vs torch.autograd.gradcheck (default mode), float64",
        (
            "size",
            "torch gradcheck",
            "torch repeats",
            "full_jacobian_check (reference)",
            "full_jacobian_check (torch adapter)",
            "speed-up (reference)",
            "speed-up (torch adapter)",
        ),
    )
    directional = Section(
        "Directional: directional_check vs torch.autograd.gradcheck(fast_mode=True), float64",
        (
            "size",
            "torch fast_mode",
            "directional_check, 1 direction",
            "directional_check, 2 directions (default)",
            "directional_check, 1 direction, torch adapter",
            "speed-up (1 direction)",
            "speed-up (2 directions)",
            "speed-up (1 direction, torch adapter)",
        ),
    )
    torch_pair = adapter("torch") if torch is not None else None
    nan = float("nan")
    rng = np.random.default_rng(1)
    for n in FULL_SIZES:
        x = rng.standard_normal((n, n)) * 3
        t = nan
        torch_repeat = "skipped (--quick)"
        if torch is not None and not (opts.quick and n == 128):
            check = torch_softmax_gradcheck(torch, x, fast=False)
            if n == 128:
                t, torch_repeat = once(check), "1 (about a minute per run)"
            else:
                reps = 1 if opts.quick else 3
                t, torch_repeat = statistics.median(once(check) for _ in range(reps)), str(reps)
        elif torch is None:
            torch_repeat = "torch not installed"
        ours = time_full(softmax, softmax_backward, x, opts.repeat)
        ours_t = nan
        if torch_pair is not None and torch_pair[1] is not None:
            ours_t = time_full(torch_pair[0], torch_pair[1], x, opts.repeat)
        full.rows.append(
            [
                f"{n}x{n}",
                ms(t),
                torch_repeat,
                ms(ours),
                ms(ours_t),
                ratio(t, ours),
                ratio(t, ours_t),
            ]
        )
        print(f"  full jacobian {n} done", file=sys.stderr, flush=True)
    shares: list[str] = []  # the system's share of the time, at 4096x4096
    for n in DIRECTIONAL_SIZES:
        if opts.quick and n == 4096:
            skipped = [f"{n}x{n}", "skipped (--quick)"]
            directional.rows.append(skipped + [""] * (len(directional.header) - len(skipped)))
            continue
        x = rng.standard_normal((n, n)) * 3
        reps = 1 if opts.quick else 5
        runs: list[Callable[[], object]] = [directional_run(x, 1), directional_run(x, 2)]
        if torch is not None and torch_pair is not None:
            runs.append(torch_softmax_gradcheck(torch, x, fast=True))
            runs.append(directional_run(x, 1, torch_pair))
        medians = interleaved_medians(runs, reps)
        if n == 4096 and len(runs) == 4:
            shares.append(
                f"One more call each at {n}x{n}: torch fast mode {system_share(runs[2])}; "
                f"directional_check (2 directions) {system_share(runs[1])}."
            )
        one, two = medians[:2]
        t, adapted = medians[2:] if len(medians) == 4 else (nan, nan)
        directional.rows.append(
            [
                f"{n}x{n}",
                ms(t),
                ms(one),
                ms(two),
                ms(adapted),
                ratio(t, one),
                ratio(t, two),
                ratio(t, adapted),
            ]
        )
        print(f"  directional {n} done", file=sys.stderr, flush=True)
    full.notes.extend(
        [
            "Same input for both: x = 3 * standard normal. full_jacobian_check compares all "
            "N*D*D Jacobian entries with a per-entry derived tolerance; torch gradcheck "
            "compares the same entries with atol=1e-5, rtol=1e-3.",
            (
                "torch gradcheck at 128x128 runs once (it takes about a minute); the others "
                f"are medians of the repeats shown; ours are medians of {opts.repeat}."
                if not opts.quick
                else f"--quick: torch gradcheck once per size, not at 128x128; ours are "
                f"medians of {opts.repeat}."
            ),
        ]
    )
    directional.notes.extend(
        [
            "torch fast mode checks one scalar v^T J u; directional_check compares J u with "
            "backward(u) entry by entry, per direction. Both check one softmax: the reference "
            "(numpy) in the first columns, torch.softmax (the same code torch's "
            "gradcheck checks, two threads) through the torch adapter in the last.",
            "Medians of 5 interleaved runs (1 with --quick), after one warm-up run each; each "
            "run includes the forward and backward calls through softmax-verify's sandbox.",
        ]
    )
    directional.notes.extend(shares)
    if torch is None:
        full.notes.append(missing("torch"))
        directional.notes.append(missing("torch"))
    return full, directional


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


def verdicts(opts: Options) -> tuple[Section, Section]:
    sys.path.insert(0, str(ROOT / "tests"))  # tests/bad_impls.py, as tests/conftest.py does
    bad_impls = importlib.import_module("bad_impls")
    cap = 20 if opts.quick else None
    good = Section(
        "Time to a verdict: the reference, ci profile",
        ("target", "invariants", "examples", "wall time", "verdict"),
    )
    # In process: as verify() runs (invariants that draw the same cases share one stream
    # of examples, softmax_verify.run.sharing), and each (invariant, dtype) pair in a property
    # of its own, as runs were before that sharing: the same checks on the same examples.
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
    # The command a user runs: a fresh process, the implementation in a child (isolated),
    # long rows and block boundaries included; at float64, and at the default two dtypes
    # side by side (one lane per core) and one after the other (--jobs 1).
    commands = {
        "`softmax-verify check --dtype float64`": ["--dtype", "float64"],
        "`softmax-verify check` (float32 and float64, one lane per core)": [],
        "`softmax-verify check --jobs 1` (float32 and float64, one process)": ["--jobs", "1"],
    }
    docs: dict[str, dict[str, Any]] = {}

    def command_run(label: str, argv: list[str]) -> Callable[[], None]:
        def run() -> None:
            command = [sys.executable, "-m", "softmax_verify", "check", "--format", "json", *argv]
            if cap is not None:
                command += ["--max-examples", str(cap)]
            done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False)
            docs[label] = json.loads(done.stdout) if done.stdout.strip() else {"results": []}
            docs[label].setdefault("passed", False)

        return run

    runs = [command_run(label, argv) for label, argv in commands.items()]
    walls = interleaved_medians(runs, 1 if opts.quick else 3)
    for (label, _), wall in zip(commands.items(), walls, strict=True):
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
    good.notes.append(round_trip(20 if opts.quick else 200))
    slowest = sorted(report.results, key=lambda r: r.seconds, reverse=True)[:3]
    good.notes.append(
        "slowest invariants: "
        + ", ".join(f"{r.invariant} {r.seconds:.1f} s ({r.examples} examples)" for r in slowest)
    )
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
        bad.rows.append(
            [
                entry.name,
                dtype,
                found.invariant if found is not None else "NONE (all expected invariants held)",
                found.status if found is not None else "-",
                str(examples),
                secs(seconds),
                f"{ran} of {len(entry.fails)}",
            ]
        )
    bad.notes.append(
        "Expected invariants are run in the order tests/bad_impls.py lists them, each at the "
        "entry's first dtype, until one fails; examples and time add up over those run and "
        "include Hypothesis shrinking to the minimal counterexample."
    )
    if cap is not None:
        for section in (good, bad):
            section.notes.append(f"--quick: at most {cap} examples per invariant")
    return good, bad


def diagnoses(opts: Options) -> Section:
    """Wall time of ``diagnose`` after a failure: per known-bad implementation, on its first
    failing invariant at both dtypes, and for the notebook after every invariant failed."""
    sys.path.insert(0, str(ROOT / "tests"))
    bad_impls = importlib.import_module("bad_impls")
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


class _JaxEveryLength:
    """The jax adapter before the recurring row lengths: ``(fn(a), vjp(fn, a)(g))`` as one
    program computed whole on every call, rows in blocks of 32 whatever their length,
    three of today's four XLA options, calls dispatched asynchronously. Passed to
    ``verify`` as plain functions, it is checked on every drawn length, as it was."""

    def __init__(self, jax: Any, fn: Callable[[Any], Any]) -> None:
        options = {
            "xla_backend_optimization_level": 0,
            "xla_llvm_disable_expensive_passes": True,
            "xla_cpu_use_fusion_emitters": False,
        }
        self.both = jax.jit(lambda a, g: (fn(a), jax.vjp(fn, a)[1](g)[0]), compiler_options=options)

    @staticmethod
    def _blocks(a: Array) -> list[Array]:
        count = max(1, -(-a.shape[0] // 32))
        padded = np.zeros((count * 32, *a.shape[1:]), dtype=a.dtype)
        padded[: a.shape[0]] = a
        return [padded[i * 32 : (i + 1) * 32] for i in range(count)]

    def forward(self, x: Array) -> tuple[Array, Any]:
        parts = self._blocks(x)
        y = np.concatenate([np.asarray(self.both(a, np.zeros_like(a))[0]) for a in parts])
        return y[: x.shape[0]], (parts, x.shape[0])

    def backward(self, dout: Array, cache: Any) -> Array:
        parts, n = cache
        dx = [
            np.asarray(self.both(a, g)[1]) for a, g in zip(parts, self._blocks(dout), strict=True)
        ]
        return np.concatenate(dx)[:n]


def _reference_pair(x: Array) -> tuple[Array, Array]:
    y = softmax(x)
    return y, y


def _jax_commands(opts: Options, section: Section) -> None:
    """``softmax-verify check`` on jax targets, per dtype: a fresh process, the target in
    its child, a cold persistent compilation cache (a fresh XDG_CACHE_HOME, whose entries
    count the programs compiled). CPU: user + sys of the command and its child."""
    import tempfile

    commands = {
        "`softmax-verify check reference` (the floor: numpy, every length)": ["reference"],
        "`softmax-verify check jax`": ["jax"],
        "`check tests/jax_targets.py:jitted --autodiff jax`": [
            "tests/jax_targets.py:jitted",
            "--autodiff",
            "jax",
        ],
    }
    for label, argv in commands.items():
        for dtype in ("float64", "float32"):
            with tempfile.TemporaryDirectory() as cache:
                command = [sys.executable, "-m", "softmax_verify", "check", *argv]
                command += ["--profile", "ci", "--dtype", dtype, "--format", "json"]
                if opts.quick:
                    command += ["--max-examples", "20"]
                env = {**os.environ, "XDG_CACHE_HOME": cache}
                before = os.times()
                start = time.perf_counter()
                done = subprocess.run(
                    command, capture_output=True, text=True, cwd=ROOT, env=env, check=False
                )
                wall = time.perf_counter() - start
                after = os.times()
                cpu = (after.children_user - before.children_user) + (
                    after.children_system - before.children_system
                )
                folder = Path(cache, "softmax-verify", "jax")
                programs = len(list(folder.iterdir())) if folder.is_dir() else 0
            doc = json.loads(done.stdout) if done.stdout.strip() else {"results": []}
            examples = str(sum(r["examples"] for r in doc["results"]))
            verdict = "passed" if doc.get("passed") else "FAILED"
            how = "the command line, cold cache" + ("" if argv == ["reference"] else " (now)")
            section.rows.append(
                [label, how, dtype, examples, str(programs), secs(wall), secs(cpu), verdict]
            )


def jax_verdicts(opts: Options, jax: Any) -> Section:
    """Wall and CPU time of ``verify`` (every invariant, ci profile) per dtype for jax
    targets, with the adapter before and after the recurring row lengths, and the XLA
    compilations each run made; then the command line's."""
    section = Section(
        "Time to a verdict: jax targets, ci profile, per dtype",
        ("target", "compilation", "dtype", "examples", "XLA compiles", "wall", "CPU", "verdict"),
    )
    if jax is None:
        section.notes.append(missing("jax"))
        return section
    from jax import monitoring

    from softmax_verify.target.autodiff import adapt

    compiles: list[int] = [0]

    def count(event: str, duration_secs: float, **kwargs: str | int) -> None:
        if event == "/jax/core/compile/backend_compile_duration":
            compiles[0] += 1

    monitoring.register_event_duration_secs_listener(count)
    jax.config.update("jax_enable_x64", True)
    user = adapt(jax.jit(lambda a: jax.nn.softmax(a, axis=1)), "jax")
    if user is None:  # adapt returns None only for a target of no framework
        raise RuntimeError("a jitted function was not read as a jax target")
    before = _JaxEveryLength(jax, lambda a: jax.nn.softmax(a, axis=1))
    cap = 20 if opts.quick else None
    old = "every drawn length; forward and VJP computed on every call (before)"
    new = "recurring lengths; one branch per call; short blocks for long rows (now)"
    floor = "none: numpy, every length (the floor)"
    targets: list[tuple[str, str, tuple[Callable[..., Any], Callable[..., Any] | None]]] = [
        ("the reference (numpy)", floor, (_reference_pair, softmax_backward)),
        ("built-in `jax`", old, (before.forward, before.backward)),
        ("built-in `jax`", new, adapter("jax")),
        ("jitted user function, `--autodiff jax`", new, (user.forward, user.backward)),
    ]
    for name, how, (forward, backward) in targets:
        for dtype in ("float64", "float32"):
            jax.clear_caches()  # each row starts cold, as a fresh process would
            compiles[0] = 0
            start, cpu = time.perf_counter(), time.process_time()
            report = softmax_verify.verify(
                forward, backward, dtypes=(dtype,), profile="ci", max_examples=cap, seed=0
            )
            wall, cpu = time.perf_counter() - start, time.process_time() - cpu
            verdict = (
                "passed" if report.passed else f"FAILED: {[r.invariant for r in report.failures]}"
            )
            examples = str(sum(r.examples for r in report.results))
            section.rows.append(
                [name, how, dtype, examples, str(compiles[0]), secs(wall), secs(cpu), verdict]
            )
    _jax_commands(opts, section)
    section.notes.extend(
        [
            "Columns are never padded: every drawn row length, each D % 8 remainder included, "
            "reaches the code under test as drawn (softmax_verify.target.jax_buckets). Now, a jax "
            "target's lengths come from a palette: 1..9, 16, 18, 27, 32, 36, 45, 54, 63, 64, "
            "every block boundary, 97, 300, 999, 3003 (strategies.kernel_shapes).",
            "CPU: this process's CPU time (time.process_time), or the command's and its "
            "child's (user + sys), a steadier figure than the wall time on a machine shared "
            "with other work.",
            "In process, as verify() runs: no persistent compilation cache, and calls "
            "dispatched asynchronously (the user's process keeps jax's defaults). The "
            "command line's child runs calls inline; its XLA compiles are the entries of "
            "the persistent cache it starts with empty (the compiler-option probe included).",
        ]
    )
    if cap is not None:
        section.notes.append(f"--quick: at most {cap} examples per invariant")
    return section


def headline(full: Section, directional: Section, forward: Section, backward: Section) -> Section:
    section = Section("Headline ratios (goal in brackets)", ("measure", "ratio", "goal"))

    def cell(table: Section, key: Sequence[str], column: str) -> str:
        index = list(table.header).index(column)
        for row in table.rows:
            if row[: len(key)] == list(key):
                return row[index] or "not measured"
        return "not measured"

    for size in ("64x64", "128x128"):
        section.rows.append(
            [
                f"full_jacobian_check vs torch gradcheck, {size}",
                cell(full, (size,), "speed-up (reference)"),
                ">= 100x",
            ]
        )
    section.rows.append(
        [
            "directional_check (1 direction) vs torch fast mode, 4096x4096",
            cell(directional, ("4096x4096",), "speed-up (1 direction)"),
            ">= 1x",
        ]
    )
    section.rows.append(
        [
            "directional_check (1 direction) of torch.softmax vs torch fast mode, 4096x4096",
            cell(directional, ("4096x4096",), "speed-up (1 direction, torch adapter)"),
            ">= 1x",
        ]
    )
    section.rows.append(
        [
            "directional_check (2 directions) vs torch fast mode, 4096x4096",
            cell(directional, ("4096x4096",), "speed-up (2 directions)"),
            ">= 1x",
        ]
    )
    section.rows.append(
        [
            "softmax vs scipy, (4096, 4096) float64",
            cell(forward, ("(4096, 4096)", "float64"), "scipy / ref"),
            ">= 1.5x",
        ]
    )
    for shape in SHAPES:
        for dtype in ("float32", "float64"):
            value = cell(backward, (str(shape), dtype), "straightforward / ref")
            if value != "not measured":
                section.rows.append(
                    [f"softmax_backward vs straightforward, {shape} {dtype}", value, ">= 1.3x"]
                )
    return section


def parse(argv: Sequence[str] | None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: fewer repeats, no 4096x4096 or 128x128 torch cases",
    )
    parser.add_argument(
        "--repeat", type=int, default=None, help="timeit repeats (default 15, 3 with --quick)"
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=ROOT / "bench" / "results.md",
        help="where to write the markdown tables (default bench/results.md)",
    )
    parser.add_argument(
        "--only",
        choices=("jax", "verdicts"),
        default=None,
        help="run one part and replace its sections in the output file (jax: the jax verdict "
        "times; verdicts: the times to a verdict on the reference and the known-bad ones)",
    )
    args = parser.parse_args(argv)
    repeat = args.repeat if args.repeat is not None else (3 if args.quick else 15)
    if repeat < 1:
        parser.error(f"--repeat must be at least 1, got {repeat}")
    return Options(quick=bool(args.quick), repeat=repeat, output=Path(args.output), only=args.only)


def replace_section(path: Path, section: Section) -> int:
    """Print ``section`` and put it in place of its namesake in ``path`` (appended if none)."""
    text = section.markdown()
    print(text)
    old = path.read_text() if path.exists() else ""
    head = f"### {section.title}\n"
    if head in old:
        start = old.index(head)
        # The section ends at the next heading of its level or above: the hand-written
        # notes (## Measurement notes) must survive a rewrite of the last table.
        ends = [old.find(mark, start + len(head)) for mark in ("\n### ", "\n## ")]
        after = min((end for end in ends if end >= 0), default=-1)
        old = old[:start] + text + ("" if after < 0 else old[after:])
    else:
        old = old + ("\n" if old else "") + text
    path.write_text(old)
    print(f"(section replaced in {path})", file=sys.stderr)
    return 0


#: The hand-written section that ends the results file (how to read the tables, and the
#: measurements behind the code's tuning constants): kept when the tables are rewritten.
NOTES_HEADING = "## Measurement notes"


def kept_notes(path: Path) -> str:
    """The hand-written notes section of an existing results file, or '' if it has none."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    start = text.find("\n" + NOTES_HEADING + "\n")
    return "" if start < 0 else text[start:]


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse(argv)
    torch, jax = optional("torch"), optional("jax")
    scipy = optional("scipy") if optional("scipy.special") is not None else None
    started = time.perf_counter()
    if opts.only == "jax":
        return replace_section(opts.output, jax_verdicts(opts, jax))
    if opts.only == "verdicts":
        return max(replace_section(opts.output, section) for section in verdicts(opts))
    sections = [machine(torch, jax, scipy)]
    forward, backward = kernels(opts, torch, jax, scipy)
    full, directional = gradchecks(opts, torch)
    good, bad = verdicts(opts)
    diagnosed = diagnoses(opts)
    jax_times = jax_verdicts(opts, jax)
    sections = [
        sections[0],
        headline(full, directional, forward, backward),
        forward,
        backward,
        full,
        directional,
        good,
        bad,
        diagnosed,
        jax_times,
    ]
    title = "# softmax-verify benchmarks" + (" (--quick)" if opts.quick else "")
    text = "\n".join(
        [title, "", f"Generated by bench/bench.py in {time.perf_counter() - started:.0f} s.", ""]
        + [s.markdown() for s in sections]
    )
    print(text)
    opts.output.parent.mkdir(parents=True, exist_ok=True)
    opts.output.write_text(text + kept_notes(opts.output))
    print(f"(written to {opts.output})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
