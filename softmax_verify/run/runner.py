"""``verify``: run every invariant as a Hypothesis property against one implementation.

Invariants that draw the same cases run, at each dtype, as one property that checks
each of them on every case (``_sharing``); ``run_invariant`` runs one alone. When one
fails, Hypothesis shrinks the failing case; its last replay is the minimal
counterexample, which the check's exception carries out (``case`` attribute), and the
others go on without it. The runner never lets the code under test crash it:
exceptions, wrong return types and overruns become status "error" for that
invariant, and the others go on.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis.errors import Flaky
from hypothesis.reporting import with_reporter
from hypothesis.strategies import SearchStrategy

from softmax_verify.core.domain import Domain
from softmax_verify.core.errors import (
    CallTimeout,
    ImplementationError,
    InvariantViolation,
    NotApplicable,
)
from softmax_verify.core.implementation import Implementation
from softmax_verify.core.loss_implementation import LossImplementation
from softmax_verify.core.messages import describe_exception
from softmax_verify.core.options import Accumulation, LossOptions, Options
from softmax_verify.core.result import Result, Status
from softmax_verify.core.validate import resolve_dtype
from softmax_verify.diagnosis import Diagnosis, diagnose
from softmax_verify.invariants import Case, Invariant, get_invariant
from softmax_verify.run.plan import RunPlan, run_settings
from softmax_verify.run.report import Report
from softmax_verify.run.settings import verdict_settings
from softmax_verify.run.sharing import Members, shared_groups
from softmax_verify.run.storage import private_hypothesis_storage
from softmax_verify.target.autodiff import AutodiffForward, adapt, compiled_per_shape
from softmax_verify.target.autodiff_loss import AutodiffLoss, adapt_loss
from softmax_verify.target.conventions import (
    Reading,
    implementation_from,
    loss_implementation_from,
)
from softmax_verify.target.load import with_autodiff_note, with_code_hints, with_outputs_read

__all__ = ["Target", "run_invariant", "run_pairs", "verify"]

#: What a run calls: a softmax kind's Implementation or cross_entropy's LossImplementation.
Target = Implementation | LossImplementation


class _NotApplicableStop(BaseException):
    """Ends a property whose invariant does not apply. A BaseException, so Hypothesis
    lets it through at once instead of treating it as a failure to shrink."""


@dataclass
class _State:
    examples: int = 0
    skipped: str | None = None
    timed_out: CallTimeout | None = None
    timeout_case: Case | None = None
    cases: list[Case] = field(default_factory=list)
    #: The first case that failed and how: what a failure that does not reproduce was.
    first_failure: tuple[Case, str] | None = None


def run_invariant(
    invariant: Invariant[Any] | str,
    impl: Target,
    dtype: Any = np.float64,
    *,
    profile: str = "ci",
    max_examples: int | None = None,
    seed: int | None = None,
    on_case: Callable[[Case], None] | None = None,
    base: settings | None = None,
    domain: Domain | None = None,
    accumulate: Accumulation = "float32",
    kind: str = "softmax",
    loss: LossOptions | None = None,
) -> Result:
    """Run one invariant at one dtype as a Hypothesis property and return its Result.

    ``on_case``, if given, sees each case before it is checked (the crash-isolated
    command keeps the latest, to report the input a crash happened on). ``base``, if
    given, replaces ``profile``, ``max_examples`` and ``seed``: the pytest contract runs
    under the user's active settings, example database and storage included. Shapes are
    drawn inside ``domain`` (default: every shape); half-precision tolerances follow
    the ``accumulate`` model, passed to each check and on to each tolerance; a
    cross-entropy invariant's labels and upstreams are drawn as ``loss`` says.
    """
    inv = get_invariant(invariant, kind) if isinstance(invariant, str) else invariant
    chosen = run_settings(profile, max_examples, seed) if base is None else verdict_settings(base)
    (result,) = _run_shared(
        [inv],
        impl,
        resolve_dtype(dtype),
        _Run(chosen, base is None, seed, domain, accumulate, loss or LossOptions()),
        on_case,
    )
    return result


@dataclass(frozen=True)
class _Run:
    """How each property of a run is run: its settings, whether it keeps Hypothesis's
    files in private storage (not under the user's own settings), its seed, shapes,
    accumulation model and loss options (cross_entropy's labels and reduction)."""

    chosen: settings
    private: bool
    seed: int | None
    domain: Domain | None
    accumulate: Accumulation
    loss: LossOptions


def _run_shared(
    invariants: Sequence[Invariant[Any]],
    impl: Target,
    dt: np.dtype[Any],
    run: _Run,
    on_case: Callable[[Case], None] | None = None,
) -> list[Result]:
    """Invariants that share their case strategy, checked on one stream of examples
    (``_sharing``): a property for them all, run again without each member that fails."""
    results: dict[str, Result] = {}
    live = []
    for inv in invariants:
        if inv.needs_backward and not impl.has_backward:
            results[inv.id] = Result(inv.id, dt.name, "skipped", 0, 0.0, "no backward given")
        else:
            live.append(inv)
    cases = live[0].cases(dt, run.domain, run.loss) if live else None
    spent = dict.fromkeys((inv.id for inv in live), 0.0)
    while live and cases is not None:
        members, state = Members(live, run.accumulate), _State()
        exc, seconds = _run_property(cases, members, impl, state, run, on_case)
        for name, share in members.seconds(seconds).items():
            spent[name] += share
        for name, reason in members.skipped.items():
            results[name] = Result(
                name, dt.name, "skipped", members.examples[name], spent[name], reason
            )
        if exc is None:
            for inv in members.live:
                n = members.examples[inv.id]
                results[inv.id] = Result(
                    inv.id, dt.name, "passed", n, spent[inv.id], f"held on {n} examples"
                )
            break
        culprits = _culprits(exc, members)
        for inv in culprits:
            state.examples = members.examples[inv.id]
            results[inv.id] = _failure(inv.id, dt.name, exc, state, spent[inv.id])
        live = [inv for inv in members.live if inv not in culprits]
    return [results[inv.id] for inv in invariants]


def _run_property(
    cases: SearchStrategy[Case],
    members: Members,
    impl: Target,
    state: _State,
    run: _Run,
    on_case: Callable[[Case], None] | None,
) -> tuple[Exception | None, float]:
    """One property over ``cases`` checking ``members``: what it ended with (None: held,
    or no member applies) and how long it took."""
    test = given(cases)(_property(members, impl, state, on_case))
    test = run.chosen(test)
    if run.seed is not None:
        test = hypothesis_seed(run.seed)(test)
    start = time.perf_counter()
    storage = private_hypothesis_storage() if run.private else contextlib.nullcontext()
    try:
        with with_reporter(lambda _text: None), storage:
            test()
    except _NotApplicableStop:
        pass  # every member said why (members.skipped)
    except Exception as exc:  # the property's verdict, or Hypothesis's own
        return exc, time.perf_counter() - start
    return None, time.perf_counter() - start


def _culprits(exc: Exception, members: Members) -> list[Invariant[Any]]:
    """The members ``exc`` is the verdict of: the one whose check raised it on the last
    (minimal) case; for a failure that did not happen again, the first that failed; for
    Hypothesis's own errors, every member still live."""
    if isinstance(exc, (CallTimeout, InvariantViolation, ImplementationError)):
        return [members.current]
    if isinstance(exc, Flaky) and members.first_failed is not None:
        return [members.first_failed]
    return list(members.live)


def _property(
    inv: Members, impl: Target, state: _State, on_case: Callable[[Case], None] | None
) -> Callable[[Case], None]:
    """The property Hypothesis runs: ``inv``'s check of one case, recorded in ``state``.

    A derandomized profile seeds its examples from the source of ``prop``: changing a
    character of it changes every ci verdict's examples, so it is kept as it was.
    """

    def prop(case: Case) -> None:
        if state.skipped is not None:
            return
        if state.timed_out is not None:
            raise state.timed_out  # fail fast: one overrun is the verdict, never wait again
        state.examples += 1
        if on_case is not None:
            on_case(case)
        try:
            inv.check(impl, case)
        except NotApplicable as exc:
            state.skipped = str(exc)
            raise _NotApplicableStop from None  # decided: the other examples would do nothing
        except CallTimeout as exc:
            state.timed_out, state.timeout_case = exc, case
            raise
        except (InvariantViolation, ImplementationError) as exc:
            exc.case = case  # carried out of Hypothesis's last replay: the minimal case
            if state.first_failure is None:
                what = exc.message if isinstance(exc, InvariantViolation) else str(exc)
                state.first_failure = (case, what.splitlines()[0])
            raise

    return prop


def _failure(invariant: str, dtype: str, exc: Exception, state: _State, seconds: float) -> Result:
    """The Result of a property that ended with ``exc``: failed, or an error."""

    def result(status: Status, message: str, case: Case | None, **more: Any) -> Result:
        return Result(
            invariant, dtype, status, state.examples, seconds, message, counterexample=case, **more
        )

    if isinstance(exc, CallTimeout):
        # One overrun ends the search: the case is not shrunk.
        return result("error", str(exc), state.timeout_case, location=exc.location, minimal=False)
    if isinstance(exc, InvariantViolation):
        return result(
            "failed",
            exc.message,
            exc.case,
            first_wrong_stage=exc.stage,
            mismatch=exc.mismatch,
            location=exc.location,
        )
    if isinstance(exc, ImplementationError):
        return result("error", str(exc), exc.case, location=exc.location)
    if isinstance(exc, Flaky) and (memory := _own_memory_error(exc)) is not None:
        # The verifier's own shortage, once: not the code's nondeterminism.
        return result("error", _out_of_memory(memory), None, minimal=False)
    if isinstance(exc, Flaky):  # a failure that did not happen again on the same input
        first = state.first_failure
        case = None if first is None else first[0]
        return result("failed", _nondeterministic(exc, state), case, minimal=False)
    if isinstance(exc, MemoryError):  # the code's own come as ImplementationError
        return result("error", _out_of_memory(exc), None, minimal=False)
    return result("error", describe_exception(exc), None)  # Hypothesis's own verdicts


def _own_memory_error(exc: BaseException) -> MemoryError | None:
    """The MemoryError among the failures a Flaky error wraps (an exception group's), if
    any: the verifier's, since the code's own come as ImplementationError."""
    if isinstance(exc, MemoryError):
        return exc
    for inner in getattr(exc, "exceptions", ()):
        found = _own_memory_error(inner)
        if found is not None:
            return found
    return None


def _out_of_memory(exc: MemoryError) -> str:
    """The message of a MemoryError of the verifier's own (not the code under test's,
    whose errors are ImplementationErrors): the run's shapes fitted when it started
    (``run.memory``), so other processes took the memory since, or it ran short."""
    return (
        f"the verifier ran out of memory for its own arrays ({describe_exception(exc)}); "
        "not an error of the code under test: free memory, or declare smaller shapes "
        "(--rows/--cols, domain=)"
    )


def _nondeterministic(exc: Flaky, state: _State) -> str:
    """The message for a failure Hypothesis could not reproduce on the same input."""
    if state.first_failure is None:
        return f"nondeterministic: the property failed once, then not again ({type(exc).__name__})"
    return (
        f"nondeterministic: failed on this input ({state.first_failure[1]}), "
        "then held when the same input was checked again"
    )


class _FromOptions:
    """The default of ``verify``'s common keywords: the value ``options`` holds."""

    def __repr__(self) -> str:
        return "<from options>"


_FROM_OPTIONS: Any = _FromOptions()


def verify(
    forward: Any,
    backward: Callable[..., Any] | None = None,
    *,
    dtypes: Sequence[Any] = _FROM_OPTIONS,
    kind: str = _FROM_OPTIONS,
    profile: str = _FROM_OPTIONS,
    max_examples: int | None = _FROM_OPTIONS,
    seed: int | None = _FROM_OPTIONS,
    invariants: Iterable[str] | None = _FROM_OPTIONS,
    domain: Domain | None = _FROM_OPTIONS,
    options: Options | None = None,
    target: str | None = None,
    progress: Callable[[Result], None] | None = None,
) -> Report:
    """Check ``forward`` (and ``backward``) against every invariant, at each dtype.

    ``forward``: a function, a layer class (a fresh instance per call) or a layer instance (a
    deep copy per call), read as ``options`` say (``Options``: the reading options of
    docs/conventions.md, ``autodiff`` for code written with a library's ops, the
    half-precision ``accumulate`` model, ``masked``, the ``timeout`` of each call); code that
    fits no convention raises ``ConventionError`` (a TypeError and a ValueError) saying what
    was tried.

    The common options are keywords too, and override ``options``: ``dtypes`` (float32 and
    float64 by default), ``kind`` (``"softmax"``, ``"log_softmax"``, ``"cross_entropy"``),
    ``profile`` (a registered Hypothesis profile; ``"ci"`` by default), ``max_examples``
    (overrides its count), ``seed`` (makes a random profile reproducible), ``invariants``
    (ids; all of the kind's by default) and ``domain`` (the shapes the code supports).
    ``target`` names it in the report; ``progress`` sees each result as soon as it is known.
    """
    given = {
        "dtypes": dtypes,
        "kind": kind,
        "profile": profile,
        "max_examples": max_examples,
        "seed": seed,
        "invariants": invariants,
        "domain": Domain() if domain is None else domain,  # None: every shape, as in Options
    }
    if options is not None and not isinstance(options, Options):
        raise TypeError(f"options must be a softmax_verify.Options or None, got {options!r}")
    chosen = (options or Options()).replace(
        **{k: v for k, v in given.items() if v is not _FROM_OPTIONS}
    )
    plan = RunPlan.build(chosen, progress=progress)
    impl, reading, backward_name, per_shape = _read_target(forward, backward, chosen, name=target)
    plan = plan.for_target(per_shape)  # a jax target: recurring row lengths
    results, found = run_pairs(impl, plan)
    reading = with_outputs_read(reading, impl)  # the libraries' arrays it returned, if any
    return plan.report(target or impl.name, backward_name, results, found, reading=reading)


def _read_target(
    forward: Any, backward: Callable[..., Any] | None, options: Options, *, name: str | None
) -> tuple[Target, Reading, str | None, bool]:
    """The implementation of ``forward``/``backward`` read as ``options`` say (through the
    framework's autodiff where ``options.autodiff`` names or detects one), how it was read,
    the name of the user's own backward (None when there is none, or autodiff supplies it),
    and whether it is compiled once per shape (``autodiff.compiled_per_shape``: a jax
    target). A cross_entropy target is read as a loss (``_read_loss``)."""
    if options.kind == "cross_entropy":
        return _read_loss(forward, backward, options, name=name)
    adapted = (
        None
        if isinstance(forward, AutodiffForward)
        else adapt(forward, options.autodiff, device=options.device)
    )
    if adapted is not None:
        if backward is not None:
            raise ValueError("backward must be None for an autodiff target: autodiff supplies it")
        forward, backward = adapted.forward, adapted.backward
    impl, reading = implementation_from(
        forward, backward, options.read, timeout=options.timeout, name=name
    )
    own = backward is not None and adapted is None  # autodiff's backward is not the user's
    backward_name = str(getattr(backward, "__qualname__", backward)) if own else None
    reading = with_code_hints(with_autodiff_note(reading, forward), forward)
    return impl, reading, backward_name, compiled_per_shape(forward)


def _read_loss(
    forward: Any, backward: Callable[..., Any] | None, options: Options, *, name: str | None
) -> tuple[Target, Reading, str | None, bool]:
    """``_read_target`` for a cross-entropy loss (``target.autodiff_loss`` for framework
    code; jax code is compiled once per shape: its row lengths then recur)."""
    adapted = (
        None
        if isinstance(forward, AutodiffLoss)
        else adapt_loss(forward, options.autodiff, device=options.device, loss=options.loss)
    )
    code = adapted or forward
    if isinstance(code, AutodiffLoss) and backward is not None:
        raise ValueError("backward must be None for an autodiff target: autodiff supplies it")
    impl, reading = loss_implementation_from(
        code, backward, options.read, options.loss, timeout=options.timeout, name=name
    )
    if isinstance(code, AutodiffLoss):
        reading = dataclasses.replace(reading, autodiff=code.interpretation)
    backward_name = None if backward is None else str(getattr(backward, "__qualname__", backward))
    per_shape = isinstance(code, AutodiffLoss) and code.compiled_per_shape
    return impl, reading, backward_name, per_shape


def run_pairs(
    impl: Target, plan: RunPlan, *, diagnose_failures: bool = True
) -> tuple[list[Result], tuple[Diagnosis, ...]]:
    """Each (invariant, dtype) pair of ``plan``, invariants that share their cases checked on
    one stream of examples (``_sharing``), then the diagnosis of any failures (unless
    ``diagnose_failures`` is False): the one run of ``verify`` and of the command, in
    process or on the child's implementation. ``plan.progress`` gets each result in
    report order."""
    pairs = [(inv.id, dt.name) for inv, dt in plan.pairs]
    done: dict[tuple[str, str], Result] = {}
    reported = 0
    run = _Run(
        run_settings(plan.profile, plan.max_examples, plan.seed),
        True,
        plan.seed,
        plan.domain,
        plan.accumulate,
        plan.options.loss,
    )
    for dtype, invariants in shared_groups(plan.pairs):
        for result in _run_shared(invariants, impl, dtype, run):
            done[(result.invariant, result.dtype)] = result
        # Progress in report order: each result once every one before it is in.
        while reported < len(pairs) and pairs[reported] in done:
            if plan.progress is not None:
                plan.progress(done[pairs[reported]])
            reported += 1
    results = [done[pair] for pair in pairs]
    found = (
        diagnose(impl, results, plan.dtypes, accumulate=plan.accumulate, kind=plan.kind)
        if diagnose_failures
        else ()
    )
    return results, found
