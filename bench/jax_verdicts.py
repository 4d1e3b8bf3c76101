"""Time to a verdict on jax targets: ``verify`` in process with the adapter before and
after the recurring row lengths, and the command line, with the XLA compilations each made."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from _common import ROOT, Array, BenchOptions, Section, missing, secs

import softmax_verify
from softmax_verify.bundled.reference import softmax, softmax_backward
from softmax_verify.target.frameworks import adapter

#: A row's target: its name, how it is compiled, and its (forward, backward) pair.
Target = tuple[str, str, tuple[Callable[..., Any], Callable[..., Any] | None]]

NOTES = [
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
    """The reference's forward in the (output, cache) convention: the floor's target."""
    y = softmax(x)
    return y, y


def _jax_commands(opts: BenchOptions, section: Section) -> None:
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


def jax_verdicts(opts: BenchOptions, jax: Any) -> Section:
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
    compiles = _compile_counter()
    jax.config.update("jax_enable_x64", True)
    cap = 20 if opts.quick else None
    for name, how, pair in _targets(jax):
        for dtype in ("float64", "float32"):
            row = _verify_row(jax, compiles, pair, dtype, cap)
            section.rows.append([name, how, dtype, *row])
    _jax_commands(opts, section)
    section.notes.extend(NOTES)
    if cap is not None:
        section.notes.append(f"--quick: at most {cap} examples per invariant")
    return section


def _compile_counter() -> list[int]:
    """A one-item counter of XLA backend compilations, which jax's monitoring increments."""
    from jax import monitoring

    compiles: list[int] = [0]

    def count(event: str, duration_secs: float, **kwargs: str | int) -> None:
        if event == "/jax/core/compile/backend_compile_duration":
            compiles[0] += 1

    monitoring.register_event_duration_secs_listener(count)
    return compiles


def _targets(jax: Any) -> list[Target]:
    """The (name, compilation, pair) of each target verified in process, the floor first."""
    from softmax_verify.target.autodiff import adapt

    user = adapt(jax.jit(lambda a: jax.nn.softmax(a, axis=1)), "jax")
    if user is None:  # adapt returns None only for a target of no framework
        raise RuntimeError("a jitted function was not read as a jax target")
    before = _JaxEveryLength(jax, lambda a: jax.nn.softmax(a, axis=1))
    old = "every drawn length; forward and VJP computed on every call (before)"
    new = "recurring lengths; one branch per call; short blocks for long rows (now)"
    floor = "none: numpy, every length (the floor)"
    return [
        ("the reference (numpy)", floor, (_reference_pair, softmax_backward)),
        ("built-in `jax`", old, (before.forward, before.backward)),
        ("built-in `jax`", new, adapter("jax")),
        ("jitted user function, `--autodiff jax`", new, (user.forward, user.backward)),
    ]


def _verify_row(
    jax: Any,
    compiles: list[int],
    pair: tuple[Callable[..., Any], Callable[..., Any] | None],
    dtype: str,
    cap: int | None,
) -> list[str]:
    """One cold verify of pair at dtype: examples, XLA compiles, wall, CPU, verdict cells."""
    forward, backward = pair
    jax.clear_caches()  # each row starts cold, as a fresh process would
    compiles[0] = 0
    start, cpu = time.perf_counter(), time.process_time()
    report = softmax_verify.verify(
        forward, backward, dtypes=(dtype,), profile="ci", max_examples=cap, seed=0
    )
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    verdict = "passed" if report.passed else f"FAILED: {[r.invariant for r in report.failures]}"
    examples = str(sum(r.examples for r in report.results))
    return [examples, str(compiles[0]), secs(wall), secs(cpu), verdict]
