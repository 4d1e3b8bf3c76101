"""``verify``: run every invariant as a Hypothesis property against one implementation.

Each (invariant, dtype) runs as its own property. When one fails, Hypothesis
shrinks the failing case; its last replay is the minimal counterexample, which
the check's exception carries out (``case`` attribute). The runner never lets
the code under test crash it: exceptions, wrong return types and overruns
become status "error" for that invariant, and the next invariant runs.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis.reporting import with_reporter

from softmax_verify._compare import Mismatch
from softmax_verify._validate import resolve_dtype
from softmax_verify.autodiff import AutodiffForward, adapt
from softmax_verify.errors import (
    CallTimeout,
    ImplementationError,
    InvariantViolation,
    NotApplicable,
)
from softmax_verify.implementation import Implementation
from softmax_verify.invariants import Case, Invariant, get_invariant, invariants_for
from softmax_verify.kinds import check_kind
from softmax_verify.profiles import PROFILES
from softmax_verify.report import Report, Result, Status

__all__ = ["run_invariant", "verify"]


@dataclass
class _State:
    examples: int = 0
    skipped: str | None = None
    timed_out: CallTimeout | None = None
    timeout_case: Case | None = None
    cases: list[Case] = field(default_factory=list)


def _settings(profile: str, max_examples: int | None, seed: int | None) -> settings:
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {', '.join(PROFILES)}; got {profile!r}")
    base = settings.get_profile(profile)
    return settings(
        base,
        max_examples=max_examples if max_examples is not None else base.max_examples,
        derandomize=base.derandomize and seed is None,
        database=None,  # a verifier run must not write an example database into the user's folder
        deadline=None,  # per-call time is bounded by the sandbox's timeout instead
        report_multiple_bugs=False,
        # The explain phase only annotates Hypothesis's own report, which is silenced here, and
        # calls the code under test about 100 more times per failure.
        phases=tuple(p for p in base.phases if p is not Phase.explain),
        # The code under test may be slow or the arrays large: neither is a property failure.
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
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
    kind: str = "softmax",
) -> Result:
    """Run one invariant at one dtype as a Hypothesis property and return its Result.

    ``on_case``, if given, sees each case before it is checked (the crash-isolated
    command keeps the latest, to report the input a crash happened on).
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
        except CallTimeout as exc:
            state.timed_out, state.timeout_case = exc, case
            raise
        except (InvariantViolation, ImplementationError) as exc:
            exc.case = case  # carried out of Hypothesis's last replay: the minimal case
            raise

    test = given(inv.cases(dt))(prop)
    test = _settings(profile, max_examples, seed)(test)
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
        with with_reporter(lambda _text: None):
            test()
    except CallTimeout as exc:
        status, message, case = "error", str(exc), state.timeout_case
        minimal = False  # one overrun ends the search: the case is not shrunk
    except InvariantViolation as exc:
        status, message, stage, mismatch = "failed", exc.message, exc.stage, exc.mismatch
        location = exc.location
        case = exc.case
    except ImplementationError as exc:
        status, message, location = "error", str(exc), exc.location
        case = exc.case
    except Exception as exc:  # Hypothesis's own verdicts, e.g. a flaky (nondeterministic) target
        status, message = (
            "error",
            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
        )
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


def _interpretation(kind: str, how: object) -> str:
    """The report's interpretation line: the kind when not softmax, and how it was read."""
    parts = [] if kind == "softmax" else [kind]
    if isinstance(how, str) and how:
        parts.append(how)
    return "; ".join(parts)


def verify(
    forward: Callable[..., Any],
    backward: Callable[..., Any] | None = None,
    *,
    dtypes: Sequence[str] = ("float64",),
    profile: str = "ci",
    max_examples: int | None = None,
    seed: int | None = None,
    timeout: float | None = 10.0,
    invariants: Iterable[str] | None = None,
    target: str | None = None,
    progress: Callable[[Result], None] | None = None,
    kind: str = "softmax",
    masked: bool = False,
    autodiff: str | None = None,
    device: str = "cpu",
) -> Report:
    """Check ``forward`` (and ``backward``) against every invariant, at each dtype.

    ``profile`` picks the Hypothesis profile (dev, ci, thorough); ``max_examples``
    overrides its example count; ``seed`` makes a random profile reproducible (a
    seed is drawn and reported when the profile is not derandomized). Each call
    of the implementation is limited to ``timeout`` seconds. ``kind`` says what the
    code computes (``"softmax"`` or ``"log_softmax"``) and picks the invariant set;
    ``masked=True`` adds the checks on rows with masked (-inf) entries. ``autodiff``
    (``"torch"``/``"jax"``, or detected) reads ``forward`` as written with that framework's
    ops, its backward from the framework's autodiff; ``device`` applies to torch
    (softmax_verify.autodiff).
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
    if seed is None and not settings.get_profile(profile).derandomize:
        seed = random.SystemRandom().randrange(2**32)
    interpretation = _interpretation(kind, getattr(forward, "interpretation", None))
    adapted = (
        None if isinstance(forward, AutodiffForward) else adapt(forward, autodiff, device=device)
    )
    if adapted is not None:
        if backward is not None:
            raise ValueError("backward must be None for an autodiff target: autodiff supplies it")
        forward, backward = adapted.forward, adapted.backward
        interpretation = _interpretation(kind, adapted.interpretation)
    impl = Implementation(forward, backward, timeout=timeout, name=target)
    results = []
    for inv in selected:
        for dt in resolved:
            result = run_invariant(
                inv, impl, dt, profile=profile, max_examples=max_examples, seed=seed
            )
            results.append(result)
            if progress is not None:
                progress(result)
    return Report(
        target=target or impl.name,
        backward=None
        if backward is None or interpretation
        else str(getattr(backward, "__qualname__", backward)),
        profile=profile,
        seed=seed,
        results=tuple(results),
        interpretation=interpretation,
    )
