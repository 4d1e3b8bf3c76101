"""The gradient checks: ``full_jacobian_check`` against ``torch.autograd.gradcheck``
(default mode) and ``directional_check`` against its fast mode, on the same float64 input."""

from __future__ import annotations

import statistics
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
from _common import (
    Array,
    BenchOptions,
    Section,
    interleaved_medians,
    median_seconds,
    missing,
    ms,
    once,
    ratio,
    system_share,
)

from softmax_verify.bundled.reference import softmax, softmax_backward
from softmax_verify.gradcheck import directional_check, full_jacobian_check
from softmax_verify.target.frameworks import adapter

FULL_SIZES = (32, 64, 128)
DIRECTIONAL_SIZES = (1024, 4096)


def time_full(
    forward: Callable[..., Any], backward: Callable[..., Any], x: Array, repeat: int
) -> float:
    """Median seconds of ``full_jacobian_check`` on ``x``, after checking that it passes."""
    result = full_jacobian_check(forward, backward, x)
    if not result.passed:
        raise AssertionError(f"full_jacobian_check rejected a correct softmax: {result}")
    return median_seconds(lambda: full_jacobian_check(forward, backward, x), repeat)


def directional_run(x: Array, directions: int, pair: Any = None) -> Callable[[], None]:
    """One ``directional_check`` of the pair (default: the reference) on ``x``, to time."""
    forward, backward = pair if pair is not None else (softmax, softmax_backward)

    def run() -> None:
        result = directional_check(forward, backward, x, directions=directions)
        if not result.passed:
            raise AssertionError(f"directional_check rejected a correct softmax: {result}")

    return run


def torch_softmax_gradcheck(torch: Any, x: Array, fast: bool) -> Callable[[], bool]:
    """One ``torch.autograd.gradcheck`` of ``torch.softmax`` on a copy of ``x``, to time."""
    t = torch.from_numpy(x.copy()).requires_grad_(True)

    def run() -> bool:
        return bool(
            torch.autograd.gradcheck(lambda a: torch.softmax(a, dim=1), (t,), fast_mode=fast)
        )

    return run


def gradchecks(opts: BenchOptions, torch: Any) -> tuple[Section, Section]:
    """The full-Jacobian and directional tables: ours against torch's gradcheck."""
    torch_pair = adapter("torch") if torch is not None else None
    rng = np.random.default_rng(1)  # one stream: the full checks' inputs, then the directional
    full = _full_jacobian(opts, torch, torch_pair, rng)
    directional = _directional(opts, torch, torch_pair, rng)
    return full, directional


def _full_jacobian(
    opts: BenchOptions, torch: Any, torch_pair: Any, rng: np.random.Generator
) -> Section:
    """The full-Jacobian table: a row per size in FULL_SIZES, and its notes."""
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
    for n in FULL_SIZES:
        x = rng.standard_normal((n, n)) * 3
        full.rows.append(_full_row(opts, torch, torch_pair, x, n))
        print(f"  full jacobian {n} done", file=sys.stderr, flush=True)
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
    if torch is None:
        full.notes.append(missing("torch"))
    return full


def _full_row(opts: BenchOptions, torch: Any, torch_pair: Any, x: Array, n: int) -> list[str]:
    """One size's row: torch gradcheck's time, ours (reference, torch adapter), speed-ups."""
    nan = float("nan")
    t, torch_repeat = _torch_full_time(opts, torch, x, n)
    ours = time_full(softmax, softmax_backward, x, opts.repeat)
    ours_t = nan
    if torch_pair is not None and torch_pair[1] is not None:
        ours_t = time_full(torch_pair[0], torch_pair[1], x, opts.repeat)
    return [
        f"{n}x{n}",
        ms(t),
        torch_repeat,
        ms(ours),
        ms(ours_t),
        ratio(t, ours),
        ratio(t, ours_t),
    ]


def _torch_full_time(opts: BenchOptions, torch: Any, x: Array, n: int) -> tuple[float, str]:
    """torch gradcheck's median time on ``x`` (NaN when not run) and its "repeats" cell."""
    if torch is None:
        return float("nan"), "torch not installed"
    if opts.quick and n == 128:
        return float("nan"), "skipped (--quick)"
    check = torch_softmax_gradcheck(torch, x, fast=False)
    if n == 128:
        return once(check), "1 (about a minute per run)"
    reps = 1 if opts.quick else 3
    return statistics.median(once(check) for _ in range(reps)), str(reps)


def _directional(
    opts: BenchOptions, torch: Any, torch_pair: Any, rng: np.random.Generator
) -> Section:
    """The directional table: a row per size in DIRECTIONAL_SIZES, and its notes."""
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
    shares: list[str] = []  # the system's share of the time, at 4096x4096
    for n in DIRECTIONAL_SIZES:
        if opts.quick and n == 4096:
            skipped = [f"{n}x{n}", "skipped (--quick)"]
            directional.rows.append(skipped + [""] * (len(directional.header) - len(skipped)))
            continue
        x = rng.standard_normal((n, n)) * 3
        row, share = _directional_row(opts, torch, torch_pair, x, n)
        directional.rows.append(row)
        if share is not None:
            shares.append(share)
        print(f"  directional {n} done", file=sys.stderr, flush=True)
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
        directional.notes.append(missing("torch"))
    return directional


def _directional_row(
    opts: BenchOptions, torch: Any, torch_pair: Any, x: Array, n: int
) -> tuple[list[str], str | None]:
    """One size's row of interleaved medians, and at 4096x4096 the system's share (else None)."""
    nan = float("nan")
    reps = 1 if opts.quick else 5
    runs: list[Callable[[], object]] = [directional_run(x, 1), directional_run(x, 2)]
    if torch is not None and torch_pair is not None:
        runs.append(torch_softmax_gradcheck(torch, x, fast=True))
        runs.append(directional_run(x, 1, torch_pair))
    medians = interleaved_medians(runs, reps)
    share = None
    if n == 4096 and len(runs) == 4:
        share = (
            f"One more call each at {n}x{n}: torch fast mode {system_share(runs[2])}; "
            f"directional_check (2 directions) {system_share(runs[1])}."
        )
    one, two = medians[:2]
    t, adapted = medians[2:] if len(medians) == 4 else (nan, nan)
    row = [
        f"{n}x{n}",
        ms(t),
        ms(one),
        ms(two),
        ms(adapted),
        ratio(t, one),
        ratio(t, two),
        ratio(t, adapted),
    ]
    return row, share
