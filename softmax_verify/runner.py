"""``verify``: run every invariant as a Hypothesis property against one implementation.

Each (invariant, dtype) runs as its own property. When one fails, Hypothesis
shrinks the failing case; its last replay is the minimal counterexample, which
the check's exception carries out (``case`` attribute). The runner never lets
the code under test crash it: exceptions, wrong return types and overruns
become status "error" for that invariant, and the next invariant runs.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis.errors import Flaky
from hypothesis.reporting import with_reporter

from softmax_verify._messages import describe_exception
from softmax_verify._plan import RunPlan, run_settings
from softmax_verify._settings import DEFAULT_DTYPES, verdict_settings
from softmax_verify._storage import private_hypothesis_storage
from softmax_verify._validate import resolve_dtype
from softmax_verify.autodiff import AutodiffForward, adapt, compiled_per_shape
from softmax_verify.conventions import ReadOptions, implementation_from
from softmax_verify.diagnosis import Diagnosis, diagnose
from softmax_verify.domain import Domain
from softmax_verify.errors import (
    CallTimeout,
    ImplementationError,
    InvariantViolation,
    NotApplicable,
)
from softmax_verify.implementation import Implementation
from softmax_verify.invariants import Case, Invariant, get_invariant
from softmax_verify.report import Report, Result, Status
from softmax_verify.targets import with_autodiff_note
from softmax_verify.tolerances import accumulation

__all__ = ["run_invariant", "run_pairs", "verify"]


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
    invariant: Invariant | str,
    impl: Implementation,
    dtype: Any = np.float64,
    *,
    profile: str = "ci",
    max_examples: int | None = None,
    seed: int | None = None,
    on_case: Callable[[Case], None] | None = None,
    base: settings | None = None,
    domain: Domain | None = None,
    accumulate: str = "float32",
    kind: str = "softmax",
) -> Result:
    """Run one invariant at one dtype as a Hypothesis property and return its Result.

    ``on_case``, if given, sees each case before it is checked (the crash-isolated
    command keeps the latest, to report the input a crash happened on). ``base``, if
    given, replaces ``profile``, ``max_examples`` and ``seed``: the pytest contract runs
    under the user's active settings, example database and storage included. Shapes are
    drawn inside ``domain`` (default: every shape); half-precision tolerances follow
    the ``accumulate`` model (``tolerances.accumulation``).
    """
    inv = get_invariant(invariant, kind) if isinstance(invariant, str) else invariant
    dt = resolve_dtype(dtype)
    if inv.needs_backward and not impl.has_backward:
        return Result(inv.id, dt.name, "skipped", 0, 0.0, "no backward given")
    state = _State()
    test = given(inv.cases(dt, domain))(_property(inv, impl, state, on_case))
    test = (run_settings(profile, max_examples, seed) if base is None else verdict_settings(base))(
        test
    )
    if seed is not None:
        test = hypothesis_seed(seed)(test)
    start = time.perf_counter()
    storage = private_hypothesis_storage() if base is None else contextlib.nullcontext()
    try:
        with with_reporter(lambda _text: None), storage, accumulation(accumulate):
            test()
    except _NotApplicableStop:
        pass  # state.skipped holds the reason
    except Exception as exc:  # the property's verdict, or Hypothesis's own
        return _failure(inv.id, dt.name, exc, state, time.perf_counter() - start)
    seconds = time.perf_counter() - start
    if state.skipped is not None:
        return Result(inv.id, dt.name, "skipped", state.examples, seconds, state.skipped)
    message = f"held on {state.examples} examples"
    return Result(inv.id, dt.name, "passed", state.examples, seconds, message)


def _property(
    inv: Invariant, impl: Implementation, state: _State, on_case: Callable[[Case], None] | None
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
    if isinstance(exc, Flaky):  # a failure that did not happen again on the same input
        first = state.first_failure
        case = None if first is None else first[0]
        return result("failed", _nondeterministic(exc, state), case, minimal=False)
    return result("error", describe_exception(exc), None)  # Hypothesis's own verdicts


def _nondeterministic(exc: Flaky, state: _State) -> str:
    """The message for a failure Hypothesis could not reproduce on the same input."""
    if state.first_failure is None:
        return f"nondeterministic: the property failed once, then not again ({type(exc).__name__})"
    return (
        f"nondeterministic: failed on this input ({state.first_failure[1]}), "
        "then held when the same input was checked again"
    )


def verify(
    forward: Any,
    backward: Callable[..., Any] | None = None,
    *,
    dtypes: Sequence[str] = DEFAULT_DTYPES,
    profile: str = "ci",
    max_examples: int | None = None,
    seed: int | None = None,
    timeout: float | None = 10.0,
    invariants: Iterable[str] | None = None,
    target: str | None = None,
    progress: Callable[[Result], None] | None = None,
    domain: Domain | None = None,
    accumulate: str = "float32",
    grad: str | None = None,
    grad_at: str | None = None,
    rowwise: bool = False,
    axis: int = -1,
    rank: int = 2,
    kind: str = "softmax",
    masked: bool = False,
    autodiff: str | None = None,
    device: str = "cpu",
) -> Report:
    """Check ``forward`` (and ``backward``) against every invariant, at each dtype.

    ``forward`` is a function, a layer class (a fresh instance per forward call) or a
    layer instance (a deep copy per forward call); ``grad``, ``grad_at``, ``rowwise``,
    ``axis`` and ``rank`` say how to read it, as the command line's options do
    (``softmax_verify.conventions.ReadOptions``). Code that fits no convention raises
    ``ConventionError`` (a TypeError and a ValueError) saying what was tried.

    ``dtypes`` defaults to float32 and float64. ``profile`` picks the Hypothesis
    profile: dev, ci, thorough or any other registered one. ``max_examples``
    overrides its example count; ``seed`` makes a random profile reproducible (a
    seed is drawn and reported when the profile is not derandomized). Each call
    of the implementation is limited to ``timeout`` seconds. ``dtypes`` may include
    float16 and bfloat16 (ml_dtypes); their tolerances follow ``accumulate``:
    ``"float32"`` (float32 or wider accumulation, rounded once: what production
    kernels do) or ``"input"`` (accumulation in the half dtype itself). ``domain``
    (a ``Domain``) restricts the shapes drawn to those the implementation supports.
    ``kind`` says what the code computes (``"softmax"`` or ``"log_softmax"``) and picks
    the invariant set; ``masked=True`` adds the checks on rows with masked (-inf)
    entries. ``autodiff`` (``"torch"``/``"jax"``, or detected) reads ``forward`` as
    written with that framework's ops, its backward from the framework's autodiff;
    ``device`` applies to torch (softmax_verify.autodiff). A jax target, compiled once
    per shape, is checked on row lengths from a palette (``Domain.recurring_cols``).
    """
    plan = RunPlan.build(
        dtypes=dtypes,
        profile=profile,
        max_examples=max_examples,
        seed=seed,
        invariants=invariants,
        domain=domain,
        accumulate=accumulate,
        kind=kind,
        masked=masked,
        progress=progress,
    )
    options = ReadOptions(grad=grad, grad_at=grad_at, rowwise=rowwise, axis=axis, rank=rank)
    adapted = (
        None if isinstance(forward, AutodiffForward) else adapt(forward, autodiff, device=device)
    )
    if adapted is not None:
        if backward is not None:
            raise ValueError("backward must be None for an autodiff target: autodiff supplies it")
        forward, backward = adapted.forward, adapted.backward
    impl, reading = implementation_from(forward, backward, options, timeout=timeout, name=target)
    plan = plan.for_target(compiled_per_shape(forward))  # a jax target: recurring lengths
    results, found = run_pairs(impl, plan)
    own = backward is not None and adapted is None  # autodiff's backward is not the user's
    return plan.report(
        target or impl.name,
        str(getattr(backward, "__qualname__", backward)) if own else None,
        results,
        found,
        reading=with_autodiff_note(reading, forward),
    )


def run_pairs(
    impl: Implementation, plan: RunPlan, *, diagnose_failures: bool = True
) -> tuple[list[Result], tuple[Diagnosis, ...]]:
    """Each (invariant, dtype) pair of ``plan`` in turn, then the diagnosis of any failures
    (unless ``diagnose_failures`` is False): the one run of ``verify`` and of the command,
    in process or on the child's implementation."""
    results = []
    for inv, dtype in plan.pairs:
        result = run_invariant(
            inv,
            impl,
            dtype,
            profile=plan.profile,
            max_examples=plan.max_examples,
            seed=plan.seed,
            domain=plan.domain,
            accumulate=plan.accumulate,
            kind=plan.kind,
        )
        results.append(result)
        if plan.progress is not None:
            plan.progress(result)
    # The catalogue is of softmax mistakes: a log_softmax is not diagnosed against it.
    diagnosed = plan.kind == "softmax" and diagnose_failures
    found = diagnose(impl, results, plan.dtypes) if diagnosed else ()
    return results, found
