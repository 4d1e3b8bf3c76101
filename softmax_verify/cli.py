"""``softmax-verify``: the command line.

    softmax-verify check [TARGET] [--backward TARGET]
                         [--dtype float64|float32|float16|bfloat16|all|all-half]
                         [--accumulate float32|input|input-worst-case]
                         [--rows MIN:MAX] [--cols MIN:MAX] [--cols-multiple-of K]
                         [--profile dev|ci|thorough] [--max-examples N] [--seed N]
                         [--format text|json|junit|github] [--output FILE]
                         [--timeout SECONDS]
                         [--invariant ID ...] [--no-isolate] [--jobs N]
                         [--grad vjp|elementwise|jacobian] [--grad-at x|y]
                         [--rowwise] [--axis K] [--rank 2|3|4]
                         [--kind softmax|log_softmax|cross_entropy] [--masked]
                         [--labels index|onehot|probs] [--reduction mean|sum|none]
                         [--autodiff torch|jax|tensorflow|autograd|mygrad]
                         [--device cpu|cuda[:N]]
    softmax-verify list [--format text|json] [--kind softmax|log_softmax|cross_entropy]
                        [--masked]
    softmax-verify --version

Without ``--dtype``, float32 and float64 are checked; ``--dtype all`` is the same pair;
``all-half`` is float16 and bfloat16 (bfloat16 needs the ``half`` extra: ml_dtypes).

``check`` imports and runs the implementation only in a child process
(``softmax_verify.isolation.verifier``); this process generates the inputs, computes the
reference, compares and reports. A crash of the child (a segfault in a C extension,
``os.abort()``, ``os._exit``) or a call stuck where the time limit cannot interrupt
it becomes an error of the invariant being checked, and the others still run.
``--no-isolate`` runs it in this process instead, e.g. to debug it with pdb, and gives
that up: a crash or hang ends the run, and the target's global state (numpy's error
state, patched functions, random seeds, signal handlers) is the verifier's too.

The command (the console script, ``python -m softmax_verify``) runs ``main`` in a process
of its own under a small supervisor (``isolation.supervisor``, Linux): nothing the
target started outlives the command, even when the verifier is killed.

Exit status: 0 when nothing failed or errored, 1 when an invariant failed or the
implementation errored, 2 for a usage error (one line on stderr, no traceback).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import shlex
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import NoReturn, TypeVar

from softmax_verify import __version__
from softmax_verify.core.domain import Domain
from softmax_verify.core.dtypes import bfloat16
from softmax_verify.core.extras import install_hint
from softmax_verify.core.kinds import KINDS
from softmax_verify.core.messages import one_line
from softmax_verify.core.options import (
    ACCUMULATIONS,
    AUTODIFF,
    DEFAULT_DTYPES,
    GRAD_AT,
    GRADS,
    LABEL_FORMS,
    REDUCTIONS,
    Options,
)
from softmax_verify.core.result import Result
from softmax_verify.invariants import ALL_IDS, NOTATION, NOTATION_CE, invariants_for
from softmax_verify.isolation.lanes import lane_dtypes
from softmax_verify.isolation.verifier import verify_isolated
from softmax_verify.run.formats import to_github, to_junit
from softmax_verify.run.memory import MemoryShortage, check_memory
from softmax_verify.run.output import output_problem, write_atomic
from softmax_verify.run.plan import RunPlan
from softmax_verify.run.profiles import PROFILES
from softmax_verify.run.report import Report
from softmax_verify.run.storage import private_hypothesis_storage
from softmax_verify.target.load import TargetError

__all__ = ["main"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_INTERRUPTED = 128 + 2  # as a shell reports a process ended by SIGINT
_DEFAULT_TIMEOUT = Options().timeout

N = TypeVar("N", int, float)


FORMATS = {"text": "the report for people", "json": "the report as JSON"}
FORMATS["junit"] = "JUnit XML, one testcase per invariant and dtype"
FORMATS["github"] = "the text report, then GitHub workflow annotations at the failing lines"

EPILOG = """\
exit status:
  0  every invariant held (or was skipped, with the reason)
  1  an invariant failed or the implementation errored
  2  usage error: a bad option or a TARGET that cannot be loaded (one line on stderr)

examples:
  softmax-verify check mypkg/softmax.py              # its softmax_forward/softmax_backward
  softmax-verify check mypkg.layers:forward --backward mypkg.layers:backward --format junit
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"softmax-verify: error: {message}\n")


def _formatter(prog: str) -> argparse.HelpFormatter:
    # The epilog's table and examples keep their lines.
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=28)


def _bounded(
    convert: Callable[[str], N], expected: str, ok: Callable[[N], bool]
) -> Callable[[str], N]:
    """An argparse type: ``convert(text)``, rejected with "expected ..." unless ``ok``."""

    def parse(text: str) -> N:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    return parse


_positive_int = _bounded(int, "a positive integer", lambda v: v >= 1)
_seed = _bounded(int, "a non-negative integer", lambda v: v >= 0)
_seconds = _bounded(float, "a positive number of seconds", lambda v: v > 0)  # NaN fails too

#: ``--dtype`` choices and the dtypes each checks.
DTYPE_SETS: dict[str, tuple[str, ...]] = {
    "float64": ("float64",),
    "float32": ("float32",),
    "float16": ("float16",),
    "bfloat16": ("bfloat16",),
    "all": ("float64", "float32"),
    "all-half": ("float16", "bfloat16"),
}


def _parser() -> _Parser:
    parser = _Parser(
        prog="softmax-verify",
        description="Verify a softmax forward/backward: every invariant as a Hypothesis\n"
        "property, with the minimal counterexample of each failure.",
        epilog=EPILOG,
        formatter_class=_formatter,
    )
    parser.add_argument("--version", action="version", version=f"softmax-verify {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    check = sub.add_parser(
        "check",
        help="run every invariant against an implementation",
        description="Run every invariant against an implementation, at each dtype.",
        epilog=EPILOG,
        formatter_class=_formatter,
    )
    _add_target(check)
    _add_dtypes_and_shapes(check)
    _add_run_options(check)
    _add_jobs_option(check)
    _add_reading_options(check)
    _what_is_checked(check)
    _add_loss_options(check)
    _add_framework_options(check)
    listing = sub.add_parser(
        "list", help="list the invariants and their math", description="List the invariants."
    )
    listing.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        help="text: each id with its summary and math; json: a list of "
        "{id, needs_backward, summary, math, doc} (default: text)",
    )
    _what_is_checked(listing)
    return parser


def _add_target(check: argparse.ArgumentParser) -> None:
    """TARGET and ``--backward``: the code to check."""
    check.add_argument(
        "target",
        nargs="?",
        default=None,
        metavar="TARGET",
        help="MODULE:ATTR, FILE.py:ATTR, FILE.py (its forward/backward or "
        "softmax_forward/softmax_backward), scipy, torch or jax (default: the bundled "
        "reference)",
    )
    check.add_argument(
        "--backward",
        metavar="TARGET",
        help="MODULE:ATTR or FILE.py:ATTR of the backward (default: the one TARGET names, "
        "if any; without one the backward invariants are skipped)",
    )


def _add_dtypes_and_shapes(check: argparse.ArgumentParser) -> None:
    """``--dtype``, ``--accumulate`` and the shapes drawn (``--rows``, ``--cols``, ...)."""
    check.add_argument(
        "--dtype",
        choices=tuple(DTYPE_SETS),
        default=None,
        help=f"the dtype to check; all = float64 and float32; all-half = float16 and bfloat16 "
        f"(needs ml_dtypes) (default: {' and '.join(DEFAULT_DTYPES)})",
    )
    check.add_argument(
        "--accumulate",
        choices=ACCUMULATIONS,
        default="float32",
        help="half precision only: the accumulation the tolerances assume (float32: float32 "
        "or wider, rounded once to the output, as production kernels do; input: in the "
        "half dtype itself, probabilistic bounds for independent rounding errors; "
        "input-worst-case: in the half dtype, worst case, vacuous on long rows) "
        "(default: float32)",
    )
    check.add_argument(
        "--rows", metavar="MIN:MAX", help="only draw row counts in this range (default: any)"
    )
    check.add_argument(
        "--cols", metavar="MIN:MAX", help="only draw column counts in this range (default: any)"
    )
    check.add_argument(
        "--cols-multiple-of",
        type=_positive_int,
        metavar="K",
        help="only draw column counts that are multiples of K (default: any)",
    )


def _add_run_options(check: argparse.ArgumentParser) -> None:
    """How the properties run (profile, examples, seed, time limit, invariants, isolation)
    and how the report is delivered, in the order `--help` lists them."""
    _add_example_options(check)
    _add_report_options(check)
    _add_call_options(check)


def _add_example_options(check: argparse.ArgumentParser) -> None:
    """Which examples each property runs: the profile, their number, the seed."""
    check.add_argument(
        "--profile",
        choices=PROFILES,
        default="ci",
        help="Hypothesis profile: dev (50 random examples per property), ci (100, "
        "derandomized: the same every run), thorough (2000) (default: ci)",
    )
    check.add_argument(
        "--max-examples",
        type=_positive_int,
        default=None,
        metavar="N",
        help="examples per invariant and dtype (default: the profile's)",
    )
    check.add_argument(
        "--seed",
        type=_seed,
        default=None,
        metavar="N",
        help="seed of a random profile (dev, thorough), to repeat a run (default: drawn "
        "and reported; ci is derandomized)",
    )


def _add_report_options(check: argparse.ArgumentParser) -> None:
    """How the command delivers its report: its format and where it is written."""
    check.add_argument(
        "--format",
        choices=FORMATS,
        default="text",
        help="; ".join(f"{k}: {v}" for k, v in FORMATS.items()) + " (default: text)",
    )
    check.add_argument(
        "--output",
        metavar="FILE",
        default=None,
        help="write the report to FILE instead of stdout: whole, once the run has ended "
        "and every process the target started is stopped (a new file renamed over FILE)",
    )


def _add_call_options(check: argparse.ArgumentParser) -> None:
    """How the implementation is called: the time limit, which invariants, isolation."""
    check.add_argument(
        "--timeout",
        type=_seconds,
        default=_DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help="time limit of one call of the implementation (default: 10)",
    )
    check.add_argument(
        "--invariant",
        action="append",
        choices=ALL_IDS,
        metavar="ID",
        help="run only this invariant (repeatable; `softmax-verify list` names them) "
        "(default: all)",
    )
    check.add_argument(
        "--no-isolate",
        dest="isolate",
        action="store_false",
        help="import and run the implementation in this process (for pdb). This gives up "
        "what the default child process guarantees: a crash or an uninterruptible hang ends "
        "the run, and the target's global state (numpy error state, patched numpy functions, "
        "random seeds, signal handlers, working directory) reaches the verifier's own math",
    )


def _add_jobs_option(check: argparse.ArgumentParser) -> None:
    """``--jobs``: how many dtypes are checked side by side (``_lanes``)."""
    check.add_argument(
        "--jobs",
        type=_positive_int,
        default=None,
        metavar="N",
        help="dtypes checked side by side, each in a verifier process of its own (default: "
        "one per CPU core, up to the number of dtypes; 1: one after the other)",
    )


def _add_framework_options(check: argparse.ArgumentParser) -> None:
    """``--autodiff`` and ``--device``: targets written with a library's ops."""
    frameworks = check.add_argument_group("targets written with a library's ops")
    frameworks.add_argument(
        "--autodiff",
        choices=AUTODIFF,
        default=None,
        help="the target is written with this library's ops; its backward is the library's "
        "autodiff (detected without the flag where the target's type or module says so: "
        "tf.nn.softmax, jax.nn.softmax, mygrad's and keras's functions, a tf.function, "
        "an autograd.Function, an nn.Module, a jax.custom_vjp function) (default: none)",
    )
    frameworks.add_argument(
        "--device",
        default="cpu",
        help="torch device for the target: cpu or cuda[:N] (default: cpu)",
    )


def _what_is_checked(parser: argparse.ArgumentParser) -> None:
    """``--kind`` and ``--masked``: which function the code computes, on which rows."""
    group = parser.add_argument_group("what is checked")
    group.add_argument(
        "--kind",
        choices=KINDS,
        default="softmax",
        help="what the code computes: softmax probabilities, log_softmax, or cross_entropy "
        "(softmax fused with the cross-entropy loss: a loss of logits and labels, and its "
        "gradient) (default: softmax)",
    )
    group.add_argument(
        "--masked",
        action="store_true",
        help="also check rows with masked (-inf) entries; opt in when the code promises "
        "-inf support (attention masks)",
    )


def _add_loss_options(check: argparse.ArgumentParser) -> None:
    """``--labels`` and ``--reduction``: a cross-entropy target's arguments and result."""
    group = check.add_argument_group("cross-entropy targets (--kind cross_entropy)")
    group.add_argument(
        "--labels",
        choices=LABEL_FORMS,
        default="index",
        help="what the target's label argument is: int class indices, one-hot rows in x's "
        "dtype, or probability rows (soft targets) (default: index)",
    )
    group.add_argument(
        "--reduction",
        choices=REDUCTIONS,
        default="mean",
        help="which scalar the gradient is the gradient of: the batch mean, the sum, or none "
        "(the loss is per row and the upstream a vector of N); a loss returned per row is "
        "compared row by row under each (default: mean)",
    )


def _add_reading_options(check: argparse.ArgumentParser) -> None:
    """How to read the code: its convention, layout and rank (docs/conventions.md)."""
    group = check.add_argument_group("reading the code")
    group.add_argument(
        "--grad",
        choices=GRADS,
        default=None,
        help="what the backward computes (default: vjp, or detected from the code)",
    )
    group.add_argument(
        "--grad-at",
        choices=GRAD_AT,
        default=None,
        help="what an elementwise or Jacobian function receives (default: x)",
    )
    group.add_argument("--rowwise", action="store_true", help="the code is written for one 1-D row")
    group.add_argument(
        "--axis",
        type=_bounded(int, "an integer", lambda v: True),
        default=-1,
        help="the softmax axis in the code's own layout (default: -1)",
    )
    group.add_argument(
        "--rank",
        type=_bounded(int, "2, 3 or 4", lambda v: v in (2, 3, 4)),
        default=2,
        help="the rank of the arrays the code is written for (default: 2)",
    )


def options_from(args: argparse.Namespace) -> Options:
    """The run's ``Options`` from ``check``'s flags: the one place they meet the value that
    ``verify()`` and the pytest contract build too. ValueError/TypeError for a bad one."""
    return Options(
        kind=args.kind,
        dtypes=DEFAULT_DTYPES if args.dtype is None else DTYPE_SETS[args.dtype],
        masked=args.masked,
        invariants=args.invariant,
        accumulate=args.accumulate,
        domain=Domain.parse(args.rows, args.cols, args.cols_multiple_of),
        profile=args.profile,
        max_examples=args.max_examples,
        seed=args.seed,
        timeout=args.timeout,
        grad=args.grad,
        grad_at=args.grad_at,
        rowwise=args.rowwise,
        axis=args.axis,
        rank=args.rank,
        autodiff=args.autodiff,
        device=args.device,
        labels=args.labels,
        reduction=args.reduction,
    )


def options_argv(options: Options) -> list[str]:
    """The flags that give ``options`` (defaults left out), as ``options_from`` reads them."""
    words = []
    if options.dtypes != DEFAULT_DTYPES:
        name = next(k for k, v in DTYPE_SETS.items() if v == options.dtypes)
        words += ["--dtype", name]
    words += ["--profile", options.profile]
    if options.accumulate != "float32":
        words += ["--accumulate", options.accumulate]
    domain = options.domain
    for option, bounds in (("--rows", domain.rows), ("--cols", domain.cols)):
        if bounds is not None:
            words += [option, f"{bounds[0]}:{bounds[1]}"]
    if domain.cols_multiple_of != 1:
        words += ["--cols-multiple-of", str(domain.cols_multiple_of)]
    if options.max_examples is not None:
        words += ["--max-examples", str(options.max_examples)]
    if options.seed is not None:
        words += ["--seed", str(options.seed)]
    for inv in options.invariants or ():
        words += ["--invariant", inv]
    if options.kind != "softmax":
        words += ["--kind", options.kind]
    if options.masked:
        words.append("--masked")
    if options.labels != "index":
        words += ["--labels", options.labels]
    if options.reduction != "mean":
        words += ["--reduction", options.reduction]
    if options.autodiff:
        words += ["--autodiff", options.autodiff]
    if options.device != "cpu":
        words += ["--device", options.device]
    return words + _reading_argv(options) + _timeout_argv(options.timeout)


def _reading_argv(options: Options) -> list[str]:
    words = []
    if options.grad is not None:
        words += ["--grad", options.grad]
    if options.grad_at is not None:
        words += ["--grad-at", options.grad_at]
    if options.rowwise:
        words.append("--rowwise")
    if options.axis != -1:
        words += ["--axis", str(options.axis)]
    if options.rank != 2:
        words += ["--rank", str(options.rank)]
    return words


def _timeout_argv(timeout: float | None) -> list[str]:
    if timeout == _DEFAULT_TIMEOUT:
        return []
    return ["--timeout", "inf" if timeout is None else f"{timeout:g}"]


def _reproduce(target: str | None, backward: str | None, options: Options) -> str:
    """The command that repeats a run of ``options`` (with the seed it drew) on the target."""
    words = ["softmax-verify", "check"]
    if target:
        words.append(target)
    if backward:
        words += ["--backward", backward]
    return shlex.join(words + options_argv(options))


def _progress(result: Result) -> None:
    sys.stderr.write(
        f"  {result.status:8} {result.invariant} ({result.dtype}) {result.seconds:.2f} s\n"
    )
    sys.stderr.flush()


@contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """File descriptor 1 (and sys.stdout) on stderr: stdout carries the report, and what the
    code under test prints, from Python or C, must not land before it."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def _usage_error(message: str) -> int:
    sys.stderr.write(f"softmax-verify: error: {one_line(message)}\n")
    return EXIT_USAGE


def _declared_shapes(args: argparse.Namespace) -> str:
    """``--rows 100000:100000 --cols 100000:100000``: the options that set the shapes, as
    given (the default shapes, if none was)."""
    given = [
        f"{option} {value}"
        for option, value in (
            ("--rows", args.rows),
            ("--cols", args.cols),
            ("--cols-multiple-of", args.cols_multiple_of),
        )
        if value is not None
    ]
    return " ".join(given) or "the default shapes"


def _check(args: argparse.Namespace) -> int:
    if args.dtype in ("bfloat16", "all-half") and bfloat16() is None:
        return _usage_error(
            f"--dtype {args.dtype} needs bfloat16 from ml_dtypes: {install_hint('ml_dtypes')}"
        )
    if args.output is not None and (problem := output_problem(args.output)):
        return _usage_error(f"--output {args.output}: {problem}")
    try:
        options = options_from(args)
        plan = RunPlan.build(options, progress=_progress if sys.stderr.isatty() else None)
        if args.isolate:  # lanes check dtypes side by side: their memory adds up
            check_memory(plan.domain, lane_dtypes(plan.dtypes, args.jobs), kind=options.kind)
    except MemoryShortage as exc:
        return _usage_error(exc.explain(_declared_shapes(args)))
    except (TypeError, ValueError) as exc:  # an id of another kind is a usage error too
        return _usage_error(str(exc))
    try:
        # In process, what the code under test prints must not land before the report.
        with contextlib.nullcontext() if args.isolate else _stdout_to_stderr():
            report = verify_isolated(
                args.target, args.backward, plan, isolate=args.isolate, jobs=args.jobs
            )
    except TargetError as exc:
        return _usage_error(str(exc))
    command = _reproduce(args.target, args.backward, options.replace(seed=report.seed))
    report = dataclasses.replace(report, backward=args.backward, command=command)
    render = {"json": Report.to_json, "junit": to_junit, "github": to_github}
    text = render.get(args.format, Report.to_text)(report) + "\n"
    if args.output is None:
        sys.stdout.write(text)
        return EXIT_OK if report.passed else EXIT_FAILED
    try:  # every process the target started is stopped by now: none can rewrite it
        write_atomic(args.output, text.encode("utf-8"))
    except OSError as exc:
        return _usage_error(f"--output {args.output}: {exc.strerror or exc}")
    return EXIT_OK if report.passed else EXIT_FAILED


def _list(args: argparse.Namespace) -> int:
    """Each invariant's id, side, summary and math: the registry's own words (the README's
    table is generated from the same fields)."""
    selected = invariants_for(args.kind, masked=args.masked)
    if args.format == "json":
        entries = [
            {
                "id": i.id,
                "needs_backward": i.needs_backward,
                "summary": i.summary,
                "math": i.math,
                "doc": i.doc,
            }
            for i in selected
        ]
        sys.stdout.write(json.dumps(entries, indent=2) + "\n")
        return EXIT_OK
    indent = " " * 39  # under the summary: the id's 28 columns, the side's 8, the gaps
    for inv in selected:
        side = "backward" if inv.needs_backward else "forward "
        sys.stdout.write(f"{inv.id:28} {side}  {inv.summary}\n{indent}{inv.math}\n")
    notation = NOTATION_CE if args.kind == "cross_entropy" else NOTATION
    sys.stdout.write("\nwhere " + "\n      ".join(notation) + "\n")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``softmax-verify`` console script; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:  # a bare `softmax-verify`: what it can do, not just an error
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    if args.command == "list":
        return _list(args)
    try:
        # Hypothesis keeps caches in .hypothesis/ under the working directory: not the user's.
        with private_hypothesis_storage():
            return _check(args)
    except KeyboardInterrupt:  # Ctrl-C: the child is already stopped; no traceback
        sys.stderr.write("softmax-verify: interrupted\n")
        return EXIT_INTERRUPTED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
