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
6. Time to a verdict, log_softmax against softmax: ``softmax-verify check --kind KIND`` and
   ``verify`` on each kind's bundled reference, interleaved (goal: log_softmax within 1.5x).
7. Time to a verdict on jax targets: ``verify`` per dtype with the jax adapter before and
   after the recurring row lengths, and ``softmax-verify check`` on jax targets, with the
   XLA compilations each made.
8. Time to a verdict on the bundled cross-entropy reference (``softmax-verify check --kind
   cross_entropy``) beside the softmax reference's, interleaved.
9. Time to a cross-entropy diagnosis: ``diagnose`` on each catalogue id's known-bad loss
   (tests/bad_ce_impls.py) and a correct one, float32 and float64, interleaved
   (``--only cross_entropy_diagnosis``).
10. The extra cost per library (scikit-learn, thinc, mygrad, autograd, torch, jax,
    TensorFlow, keras): each one's child start and load, its first and later forward and
    vjp calls through the child, against the reference's; and reading each library's
    arrays as numpy arrays, against numpy's own copy.
11. The cost of stopping every process the target started: the reference's verdict by
    ``softmax-verify check``, this checkout (supervisor, subreapers, sweeps) against the
    code before them (``supervision.BASELINE``), side by side (``--only supervision``).

``--quick`` is a smoke run: fewer repeats, no 4096x4096 shapes, no torch gradcheck at
128x128, and verdicts capped at 20 examples per invariant. The tables are printed as
markdown and written to bench/results.md (``--output`` to change it).

This file is the entry point: the command line, the page and its order (``main``). Each
part measured is a module of its own beside it, a function per section returning its
``Section`` tables: kernels.py (1), gradchecks.py (2, 3), verdicts.py (4, 5), kinds.py (6),
jax_verdicts.py (7), cross_entropy.py (8, 9), libraries.py (10), supervision.py (11);
_common.py holds the timing loops, the table and the cell formats.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from _common import ROOT, BenchOptions, Section, optional
from cross_entropy import cross_entropy_diagnoses, cross_entropy_verdicts
from gradchecks import gradchecks
from jax_verdicts import jax_verdicts
from kernels import SHAPES, kernels
from kinds import kinds
from libraries import libraries
from supervision import supervision
from verdicts import diagnoses, verdicts

import softmax_verify


def machine(torch: Any, jax: Any, scipy: Any) -> Section:
    """The machine table: platform, CPU count and the versions of what is measured."""
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


def headline(full: Section, directional: Section, forward: Section, backward: Section) -> Section:
    """The headline table: the ratios the project has goals for, read from the others."""
    section = Section("Headline ratios (goal in brackets)", ("measure", "ratio", "goal"))
    for size in ("64x64", "128x128"):
        section.rows.append(
            [
                f"full_jacobian_check vs torch gradcheck, {size}",
                _cell(full, (size,), "speed-up (reference)"),
                ">= 100x",
            ]
        )
    section.rows.append(
        [
            "directional_check (1 direction) vs torch fast mode, 4096x4096",
            _cell(directional, ("4096x4096",), "speed-up (1 direction)"),
            ">= 1x",
        ]
    )
    section.rows.append(
        [
            "directional_check (1 direction) of torch.softmax vs torch fast mode, 4096x4096",
            _cell(directional, ("4096x4096",), "speed-up (1 direction, torch adapter)"),
            ">= 1x",
        ]
    )
    section.rows.append(
        [
            "directional_check (2 directions) vs torch fast mode, 4096x4096",
            _cell(directional, ("4096x4096",), "speed-up (2 directions)"),
            ">= 1x",
        ]
    )
    section.rows.append(
        [
            "softmax vs scipy, (4096, 4096) float64",
            _cell(forward, ("(4096, 4096)", "float64"), "scipy / ref"),
            ">= 1.5x",
        ]
    )
    for shape in SHAPES:
        for dtype in ("float32", "float64"):
            value = _cell(backward, (str(shape), dtype), "straightforward / ref")
            if value != "not measured":
                section.rows.append(
                    [f"softmax_backward vs straightforward, {shape} {dtype}", value, ">= 1.3x"]
                )
    return section


def _cell(table: Section, key: Sequence[str], column: str) -> str:
    """The cell of ``column`` in the first row of ``table`` that starts with ``key``."""
    index = list(table.header).index(column)
    for row in table.rows:
        if row[: len(key)] == list(key):
            return row[index] or "not measured"
    return "not measured"


def parse(argv: Sequence[str] | None) -> BenchOptions:
    """The bench's options from its command line."""
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
        choices=(
            "jax",
            "verdicts",
            "kinds",
            "cross_entropy",
            "cross_entropy_diagnosis",
            "libraries",
            "supervision",
        ),
        default=None,
        help="run one part and replace its sections in the output file (jax: the jax verdict "
        "times; verdicts: the times to a verdict on the reference and the known-bad ones; "
        "kinds: log_softmax's verdict against softmax's, side by side; cross_entropy: the "
        "cross-entropy reference's time beside softmax's; cross_entropy_diagnosis: the time "
        "to a cross-entropy diagnosis; libraries: each library's child start, calls and "
        "array reads; supervision: the reference's verdict before and after the subreaper and "
        "supervisor, side by side)",
    )
    args = parser.parse_args(argv)
    repeat = args.repeat if args.repeat is not None else (3 if args.quick else 15)
    if repeat < 1:
        parser.error(f"--repeat must be at least 1, got {repeat}")
    return BenchOptions(
        quick=bool(args.quick), repeat=repeat, output=Path(args.output), only=args.only
    )


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
    elif "\n" + NOTES_HEADING + "\n" in old:
        # A new table goes before the hand-written notes, which end the page.
        notes = old.index("\n" + NOTES_HEADING + "\n")
        old = old[:notes] + "\n" + text + old[notes:]
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
    """Runs the bench (or the one part ``--only`` names) and writes its tables."""
    opts = parse(argv)
    torch, jax = optional("torch"), optional("jax")
    scipy = optional("scipy") if optional("scipy.special") is not None else None
    started = time.perf_counter()
    if opts.only == "jax":
        return replace_section(opts.output, jax_verdicts(opts, jax))
    if opts.only == "verdicts":
        return max(replace_section(opts.output, section) for section in verdicts(opts))
    if opts.only == "kinds":
        return replace_section(opts.output, kinds(opts))
    if opts.only == "cross_entropy":
        return replace_section(opts.output, cross_entropy_verdicts(opts))
    if opts.only == "cross_entropy_diagnosis":
        return replace_section(opts.output, cross_entropy_diagnoses(opts))
    if opts.only == "libraries":
        return max(replace_section(opts.output, section) for section in libraries(opts))
    if opts.only == "supervision":
        return replace_section(opts.output, supervision(opts))
    # The sections in the order of the page, measured in that order (the headline only reads
    # the tables measured before it). A new section is one more entry here.
    top = machine(torch, jax, scipy)
    forward, backward = kernels(opts, torch, jax, scipy)
    full, directional = gradchecks(opts, torch)
    sections = [
        top,
        headline(full, directional, forward, backward),
        forward,
        backward,
        full,
        directional,
        *verdicts(opts),
        kinds(opts),
        diagnoses(opts),
        jax_verdicts(opts, jax),
        cross_entropy_verdicts(opts),
        cross_entropy_diagnoses(opts),
        *libraries(opts),
        supervision(opts),
    ]
    return write_results(opts, sections, time.perf_counter() - started)


def write_results(opts: BenchOptions, sections: Sequence[Section], seconds: float) -> int:
    """Prints the page of tables and writes it to the output, its notes section kept."""
    title = "# softmax-verify benchmarks" + (" (--quick)" if opts.quick else "")
    text = "\n".join(
        [title, "", f"Generated by bench/bench.py in {seconds:.0f} s.", ""]
        + [s.markdown() for s in sections]
    )
    print(text)
    opts.output.parent.mkdir(parents=True, exist_ok=True)
    opts.output.write_text(text + kept_notes(opts.output))
    print(f"(written to {opts.output})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
