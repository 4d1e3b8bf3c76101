"""``softmax-verify``: the command line.

    softmax-verify check [TARGET] [--backward TARGET] [--dtype float64|float32|all]
                         [--profile dev|ci|thorough] [--max-examples N] [--seed N]
                         [--format text|json] [--timeout SECONDS] [--invariant ID ...]
                         [--no-isolate] [--kind softmax|log_softmax] [--masked]
                         [--autodiff torch|jax] [--device cpu|cuda[:N]]
    softmax-verify list [--kind softmax|log_softmax] [--masked]

``check`` runs the implementation in a child process (``softmax_verify._isolation``):
a crash of that process (a segfault in a C extension, ``os.abort()``, ``os._exit``)
or a call stuck where the time limit cannot interrupt it becomes an error of the
invariant being checked, and the others still run. ``--no-isolate`` runs it in this
process instead, e.g. to debug it with pdb; a crash then ends the run.

Exit status: 0 when nothing failed or errored, 1 when an invariant failed or the
implementation errored, 2 for a usage error (one line on stderr, no traceback).
"""

from __future__ import annotations

import argparse
import contextlib
import shlex
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn, TypeVar

from softmax_verify._isolation import verify_isolated
from softmax_verify.autodiff import AUTODIFF
from softmax_verify.invariants import ALL_IDS, get_invariant, invariants_for
from softmax_verify.kinds import KINDS
from softmax_verify.profiles import PROFILES
from softmax_verify.report import Result
from softmax_verify.runner import verify
from softmax_verify.targets import TargetError, resolve, resolve_callable

__all__ = ["main"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

N = TypeVar("N", int, float)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"softmax-verify: error: {message}\n")


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


def _parser() -> _Parser:
    parser = _Parser(prog="softmax-verify", description="Verify a softmax forward/backward.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    check = sub.add_parser("check", help="run every invariant against an implementation")
    check.add_argument(
        "target",
        nargs="?",
        default=None,
        help="MODULE:ATTR, FILE.py:ATTR, FILE.py, scipy, torch or jax (default: the reference)",
    )
    check.add_argument("--backward", help="MODULE:ATTR or FILE.py:ATTR of the backward")
    check.add_argument("--dtype", choices=("float64", "float32", "all"), default="float64")
    check.add_argument("--profile", choices=PROFILES, default="ci")
    check.add_argument("--max-examples", type=_positive_int, default=None)
    check.add_argument("--seed", type=_seed, default=None)
    check.add_argument("--format", choices=("text", "json"), default="text")
    check.add_argument("--timeout", type=_seconds, default=10.0, help="seconds per call (10)")
    check.add_argument(
        "--invariant",
        action="append",
        choices=ALL_IDS,
        metavar="ID",
        help="run only this invariant (repeatable)",
    )
    check.add_argument(
        "--no-isolate",
        dest="isolate",
        action="store_false",
        help="run the implementation in this process (for pdb); by default it runs in a "
        "child process, so that a crash is reported instead of ending the run",
    )
    _what_is_checked(check)
    frameworks = check.add_argument_group("targets written with torch or jax ops")
    frameworks.add_argument(
        "--autodiff",
        choices=AUTODIFF,
        default=None,
        help="the target is a torch/jax function, nn.Module or autograd.Function; its "
        "backward is the framework's autodiff (detected without the flag for an "
        "autograd.Function, an nn.Module or a jax.custom_vjp function)",
    )
    frameworks.add_argument(
        "--device", default="cpu", help="torch device for the target: cpu (default) or cuda[:N]"
    )
    _what_is_checked(sub.add_parser("list", help="list the invariants and their math"))
    return parser


def _what_is_checked(parser: argparse.ArgumentParser) -> None:
    """``--kind`` and ``--masked``: which function the code computes, on which rows."""
    group = parser.add_argument_group("what is checked")
    group.add_argument(
        "--kind",
        choices=KINDS,
        default="softmax",
        help="what the code computes: softmax probabilities (default) or log_softmax",
    )
    group.add_argument(
        "--masked",
        action="store_true",
        help="also check rows with masked (-inf) entries; opt in when the code promises "
        "-inf support (attention masks)",
    )


def _reproduce(args: argparse.Namespace, seed: int | None) -> str:
    words = ["softmax-verify", "check"]
    if args.target:
        words.append(args.target)
    if args.backward:
        words += ["--backward", args.backward]
    words += ["--dtype", args.dtype, "--profile", args.profile]
    if args.max_examples is not None:
        words += ["--max-examples", str(args.max_examples)]
    if seed is not None:
        words += ["--seed", str(seed)]
    for inv in args.invariant or ():
        words += ["--invariant", inv]
    if args.kind != "softmax":
        words += ["--kind", args.kind]
    if args.masked:
        words.append("--masked")
    if args.autodiff:
        words += ["--autodiff", args.autodiff]
    if args.device != "cpu":
        words += ["--device", args.device]
    return shlex.join(words)


def _progress(result: Result) -> None:
    sys.stderr.write(
        f"  {result.status:8} {result.invariant} ({result.dtype}) {result.seconds:.2f} s\n"
    )
    sys.stderr.flush()


def _check(args: argparse.Namespace) -> int:
    try:
        # Also when isolated: a usage error is reported here, before any child starts.
        forward, backward = resolve(args.target, autodiff=args.autodiff, device=args.device)
        if args.backward and hasattr(forward, "interpretation"):
            raise TargetError("--backward cannot be given for an autodiff target: autodiff is it")
        if args.backward:
            backward = resolve_callable(args.backward)
        for invariant in args.invariant or ():
            get_invariant(invariant, args.kind)  # an id of another kind is a usage error
    except (TargetError, ValueError) as exc:
        sys.stderr.write(f"softmax-verify: error: {exc}\n")
        return EXIT_USAGE
    options: dict[str, Any] = {
        "kind": args.kind,
        "masked": args.masked,
        "dtypes": ("float64", "float32") if args.dtype == "all" else (args.dtype,),
        "profile": args.profile,
        "max_examples": args.max_examples,
        "seed": args.seed,
        "timeout": args.timeout,
        "invariants": args.invariant,
        "progress": _progress if sys.stderr.isatty() else None,
    }
    if args.isolate:
        report = verify_isolated(
            args.target,
            args.backward,
            autodiff=args.autodiff,
            device=args.device,
            interpretation=getattr(forward, "interpretation", None),
            **options,
        )
    else:
        # stdout carries the report: what the code under test prints goes to stderr.
        with contextlib.redirect_stdout(sys.stderr):
            report = verify(forward, backward, target=args.target or "reference", **options)
    report = type(report)(
        target=report.target,
        backward=args.backward,
        profile=report.profile,
        seed=report.seed,
        results=report.results,
        command=_reproduce(args, report.seed),
        interpretation=report.interpretation,
    )
    sys.stdout.write((report.to_json() if args.format == "json" else report.to_text()) + "\n")
    return EXIT_OK if report.passed else EXIT_FAILED


def _list(args: argparse.Namespace) -> int:
    for inv in invariants_for(args.kind, masked=args.masked):
        role = "backward" if inv.needs_backward else "forward "
        sys.stdout.write(f"{inv.id:28} {role}  {inv.summary}\n")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``softmax-verify`` console script; returns the exit status."""
    args = _parser().parse_args(argv)
    if args.command == "list":
        return _list(args)
    return _check(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
