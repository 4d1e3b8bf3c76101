"""``verify``: run every invariant as a Hypothesis property against one implementation.

Each (invariant, dtype) runs as its own property. When one fails, Hypothesis
shrinks the failing case; its last replay is the minimal counterexample, which
the check's exception carries out (``case`` attribute). The runner never lets
the code under test crash it: exceptions, wrong return types and overruns
become status "error" for that invariant, and the next invariant runs.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis.errors import Flaky
from hypothesis.reporting import with_reporter

from softmax_verify._compare import Mismatch
from softmax_verify._dtypes import is_half
from softmax_verify._sandbox import describe_exception
from softmax_verify._settings import DEFAULT_DTYPES, registered_profile, verdict_settings
from softmax_verify._storage import private_hypothesis_storage
from softmax_verify._validate import resolve_dtype
from softmax_verify.autodiff import AutodiffForward, adapt
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
from softmax_verify.invariants import Case, Invariant, get_invariant, invariants_for
from softmax_verify.kinds import check_kind
from softmax_verify.report import Report, Result, Status
from softmax_verify.targets import with_autodiff_note
from softmax_verify.tolerances import ACCUMULATIONS, accumulation, describe_accumulation

__all__ = ["interpretation", "run_invariant", "run_pairs", "verify"]


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


def _settings(profile: str, max_examples: int | None, seed: int | None) -> settings:
    base = registered_profile(profile)
    return settings(
        verdict_settings(base),
        max_examples=max_examples if max_examples is not None else base.max_examples,
        derandomize=base.derandomize and seed is None,
        database=None,  # a verifier run must not write an example database into the user's folder
    )


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

    test = given(inv.cases(dt, domain))(prop)
    test = (_settings(profile, max_examples, seed) if base is None else verdict_settings(base))(
        test
    )
    if seed is not None:
        test = hypothesis_seed(seed)(test)
    start = time.perf_counter()
    status: Status = "passed"
    message = ""
    case: Case | None = None
    stage: str | None = None
    mismatch: Mismatch | None = None
    location: str | None = None
    minimal = True
    try:
        storage = private_hypothesis_storage() if base is None else contextlib.nullcontext()
        with with_reporter(lambda _text: None), storage, accumulation(accumulate):
            test()
    except _NotApplicableStop:
        pass  # state.skipped holds the reason
    except CallTimeout as exc:
        status, message, case = "error", str(exc), state.timeout_case
        location = exc.location
        minimal = False  # one overrun ends the search: the case is not shrunk
    except InvariantViolation as exc:
        status, message, stage, mismatch = "failed", exc.message, exc.stage, exc.mismatch
        location = exc.location
        case = exc.case
    except ImplementationError as exc:
        status, message, location = "error", str(exc), exc.location
        case = exc.case
    except Flaky as exc:  # a failure that did not happen again on the same input
        status, message, minimal = "failed", _nondeterministic(exc, state), False
        case = None if state.first_failure is None else state.first_failure[0]
    except Exception as exc:  # Hypothesis's own verdicts
        status, message = "error", describe_exception(exc)
    seconds = time.perf_counter() - start
    if state.skipped is not None and status == "passed":
        return Result(inv.id, dt.name, "skipped", state.examples, seconds, state.skipped)
    if status == "passed":
        message = f"held on {state.examples} examples"
    return Result(
        inv.id,
        dt.name,
        status,
        state.examples,
        seconds,
        message,
        counterexample=case,
        first_wrong_stage=stage,
        mismatch=mismatch,
        location=location,
        minimal=minimal,
    )


def _nondeterministic(exc: Flaky, state: _State) -> str:
    """The message for a failure Hypothesis could not reproduce on the same input."""
    if state.first_failure is None:
        return f"nondeterministic: the property failed once, then not again ({type(exc).__name__})"
    return (
        f"nondeterministic: failed on this input ({state.first_failure[1]}), "
        "then held when the same input was checked again"
    )


def interpretation(kind: str, how: object) -> str:
    """The report's interpretation line: the kind when not softmax, and how it was read."""
    parts = [] if kind == "softmax" else [kind]
    if isinstance(how, str) and how:
        parts.append(how)
    return "; ".join(parts)


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
    ``device`` applies to torch (softmax_verify.autodiff).
    """
    if isinstance(dtypes, str):
        raise TypeError(f"dtypes must be a sequence of dtype names, got the string {dtypes!r}")
    resolved = [resolve_dtype(d, "dtypes") for d in dtypes]
    if not resolved:
        raise ValueError("dtypes must name at least one dtype, got an empty sequence")
    if max_examples is not None and (
        isinstance(max_examples, bool) or not isinstance(max_examples, int) or max_examples < 1
    ):
        raise ValueError(f"max_examples must be a positive int or None, got {max_examples!r}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise ValueError(f"seed must be a non-negative int or None, got {seed!r}")
    kind = check_kind(kind)
    if not isinstance(masked, bool):
        raise TypeError(f"masked must be a bool, got {masked!r}")
    selected = (
        invariants_for(kind, masked=masked)
        if invariants is None
        else tuple(get_invariant(i, kind) for i in invariants)
    )
    _settings(profile, max_examples, seed)  # validates profile early
    domain = _check_options(domain, accumulate)
    if seed is None and not settings.get_profile(profile).derandomize:
        seed = random.SystemRandom().randrange(2**32)
    options = ReadOptions(grad=grad, grad_at=grad_at, rowwise=rowwise, axis=axis, rank=rank)
    adapted = (
        None if isinstance(forward, AutodiffForward) else adapt(forward, autodiff, device=device)
    )
    if adapted is not None:
        if backward is not None:
            raise ValueError("backward must be None for an autodiff target: autodiff supplies it")
        forward, backward = adapted.forward, adapted.backward
    impl, reading = implementation_from(forward, backward, options, timeout=timeout, name=target)
    reading = with_autodiff_note(reading, forward)
    results, found = run_pairs(
        impl,
        [(inv, dt) for inv in selected for dt in resolved],
        resolved,
        kind=kind,
        profile=profile,
        max_examples=max_examples,
        seed=seed,
        domain=domain,
        accumulate=accumulate,
        progress=progress,
    )
    return Report(
        target=target or impl.name,
        backward=None
        if backward is None or adapted is not None
        else str(getattr(backward, "__qualname__", backward)),
        profile=profile,
        seed=seed,
        results=tuple(results),
        diagnosis=found,
        domain=domain.describe(),
        accumulate=describe_accumulation(accumulate) if any(map(is_half, resolved)) else "",
        reading=reading,
        interpretation=interpretation(kind, reading.autodiff),
    )


def run_pairs(
    impl: Implementation,
    pairs: Sequence[tuple[Invariant | str, Any]],
    dtypes: Sequence[Any],
    *,
    kind: str,
    profile: str,
    max_examples: int | None,
    seed: int | None,
    domain: Domain | None,
    accumulate: str,
    progress: Callable[[Result], None] | None,
    diagnose_failures: bool = True,
) -> tuple[list[Result], tuple[Diagnosis, ...]]:
    """Each (invariant, dtype) pair in turn, then the diagnosis of any failures (unless
    ``diagnose_failures`` is False): the one run of ``verify`` and of the command, in
    process or on the child's implementation."""
    results = []
    for inv, dtype in pairs:
        result = run_invariant(
            inv,
            impl,
            dtype,
            profile=profile,
            max_examples=max_examples,
            seed=seed,
            domain=domain,
            accumulate=accumulate,
            kind=kind,
        )
        results.append(result)
        if progress is not None:
            progress(result)
    # The catalogue is of softmax mistakes: a log_softmax is not diagnosed against it.
    found = diagnose(impl, results, dtypes) if kind == "softmax" and diagnose_failures else ()
    return results, found


def _check_options(domain: object, accumulate: object) -> Domain:
    """``domain`` (None: every shape) and ``accumulate`` validated; the domain to use."""
    if accumulate not in ACCUMULATIONS:
        raise ValueError(
            f"accumulate must be one of {', '.join(ACCUMULATIONS)}; got {accumulate!r}"
        )
    if domain is None:
        return Domain()
    if not isinstance(domain, Domain):
        raise TypeError(f"domain must be a softmax_verify.Domain or None, got {domain!r}")
    return domain
