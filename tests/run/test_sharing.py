"""Invariants that share their cases are checked on one stream of examples (``_sharing``).

A run of ``verify`` and of the command checks such invariants in one property. Each must
still get the verdict it gets alone: the same examples under the ci profile, its own
failure with a case that fails it, and its own skip; and progress in report order.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import pytest
from bad_impls import BAD, Bad

from softmax_verify import verify
from softmax_verify.bundled.reference import softmax, softmax_backward
from softmax_verify.core.errors import ImplementationError, InvariantViolation, NotApplicable
from softmax_verify.core.implementation import Implementation
from softmax_verify.core.options import Accumulation, Options
from softmax_verify.core.result import Result
from softmax_verify.invariants import INVARIANTS, Case, Invariant, _cases, get_invariant
from softmax_verify.run.plan import RunPlan
from softmax_verify.run.runner import run_invariant, run_pairs
from softmax_verify.run.sharing import shared_groups
from softmax_verify.target.local import LocalImplementation

# Known-bad implementations with two failures or more among invariants that share cases.
SHARED_FAILURES = ("notebook", "naive_forward", "log_softmax_returned", "diagonal_only")


def _bad(name: str) -> Bad:
    return next(bad for bad in BAD if bad.name == name)


def _logits(dtype: Any, shape: Any, loss: Any) -> Any:
    """One builder for every fake: its invariants share their cases."""
    return _cases.logits_case(dtype, shape)


def _fake(name: str, check: Any) -> Invariant[Any]:
    return Invariant(name, needs_backward=False, summary=name, math="-", check=check, build=_logits)


def _run(*invariants: Invariant[Any], **options: Any) -> list[Result]:
    plan = RunPlan.build(Options(dtypes=("float64",), **options))
    mine = dataclasses.replace(plan, invariants=invariants)
    results, _ = run_pairs(LocalImplementation(softmax), mine, diagnose_failures=False)
    return results


def test_groups_are_the_invariants_building_the_same_cases_at_one_dtype() -> None:
    plan = RunPlan.build()
    groups = shared_groups(plan.pairs)
    assert sum(len(members) for _, members in groups) == len(plan.pairs)
    for dtype, members in groups:
        assert len({inv.build for inv in members}) == 1
        others = [m for d, ms in groups if d == dtype and ms is not members for m in ms]
        assert members[0].build not in {inv.build for inv in others}
    # The softmax set shares: fewer properties than pairs.
    assert len(groups) < len(plan.pairs)


@pytest.mark.parametrize("name", SHARED_FAILURES)
def test_each_invariant_gets_the_verdict_it_gets_alone(name: str) -> None:
    bad = _bad(name)
    dtype = bad.dtypes[0]
    report = verify(bad.forward, bad.backward, dtypes=(dtype,), profile="ci")
    impl = LocalImplementation(bad.forward, bad.backward, timeout=10.0)
    for result in report.results:
        alone = run_invariant(result.invariant, impl, dtype, profile="ci")
        assert result.status == alone.status, (result, alone)
        if result.status == "passed":
            assert result.examples == alone.examples
    failed = {r.invariant for r in report.results if r.status == "failed"}
    assert set(bad.fails) <= failed


@pytest.mark.parametrize("name", SHARED_FAILURES)
def test_each_failure_comes_with_a_case_that_fails_that_invariant(name: str) -> None:
    bad = _bad(name)
    report = verify(bad.forward, bad.backward, dtypes=bad.dtypes[:1], profile="ci")
    impl = LocalImplementation(bad.forward, bad.backward, timeout=10.0)
    for result in report.results:
        if result.status != "failed" or result.invariant == "stage_gradients":
            continue
        assert result.counterexample is not None
        with pytest.raises((InvariantViolation, ImplementationError)):
            get_invariant(result.invariant).check(impl, result.counterexample, "float32")


def test_every_member_is_checked_on_every_case() -> None:
    seen: dict[str, list[int]] = {"a": [], "b": []}

    def recorder(name: str) -> Any:
        def check(impl: Implementation, case: Case, accumulate: Accumulation) -> None:
            seen[name].append(hash(case["x"].tobytes()))

        return check

    results = _run(_fake("a", recorder("a")), _fake("b", recorder("b")))
    assert [r.status for r in results] == ["passed", "passed"]
    assert [r.examples for r in results] == [100, 100]
    assert seen["a"] == seen["b"]
    assert len(seen["a"]) == 100


def test_the_ci_examples_are_those_of_each_invariant_alone() -> None:
    shared: list[int] = []
    alone: list[int] = []
    inv = get_invariant("matches_reference")

    def record(into: list[int]) -> Any:
        def check(impl: Implementation, case: Case, accumulate: Accumulation) -> None:
            into.append(hash(case["x"].tobytes()))

        return check

    impl = LocalImplementation(softmax)
    run_invariant(dataclasses.replace(inv, check=record(alone)), impl, "float64", profile="ci")
    _run(inv, _fake("recorder", record(shared)))
    assert shared == alone


def test_a_member_that_does_not_apply_leaves_the_others_checking() -> None:
    def never(impl: Implementation, case: Case, accumulate: Accumulation) -> None:
        raise NotApplicable("not for this target")

    def fine(impl: Implementation, case: Case, accumulate: Accumulation) -> None:
        pass

    skipped, passed = _run(_fake("never", never), _fake("fine", fine))
    assert (skipped.status, skipped.examples, skipped.message) == (
        "skipped",
        1,
        "not for this target",
    )
    assert (passed.status, passed.examples) == ("passed", 100)


def _violation(name: str) -> InvariantViolation:
    return InvariantViolation(name, f"{name} failed")


def test_two_failing_members_each_get_their_own_minimal_case() -> None:
    def wide(impl: Implementation, case: Case, accumulate: Accumulation) -> None:
        if case["x"].shape[1] >= 3:
            raise _violation("wide")

    def tall(impl: Implementation, case: Case, accumulate: Accumulation) -> None:
        if case["x"].shape[0] >= 2:
            raise _violation("tall")

    def fine(impl: Implementation, case: Case, accumulate: Accumulation) -> None:
        pass

    wide_r, tall_r, fine_r = _run(_fake("wide", wide), _fake("tall", tall), _fake("fine", fine))
    assert wide_r.status == tall_r.status == "failed"
    assert wide_r.counterexample is not None
    assert tall_r.counterexample is not None
    assert wide_r.counterexample["x"].shape == (1, 3)
    assert tall_r.counterexample["x"].shape == (2, 1)
    assert (fine_r.status, fine_r.examples) == ("passed", 100)


def test_progress_comes_in_report_order() -> None:
    seen: list[tuple[str, str]] = []
    report = verify(
        softmax,
        softmax_backward,
        max_examples=3,
        progress=lambda r: seen.append((r.invariant, r.dtype)),
    )
    assert seen == [(r.invariant, r.dtype) for r in report.results]
    assert [r.invariant for r in report.results[::2]] == [inv.id for inv in INVARIANTS]


def test_each_member_is_timed_with_its_own_checks() -> None:
    def slow(impl: Implementation, case: Case, accumulate: Accumulation) -> None:
        time.sleep(0.002)

    def fine(impl: Implementation, case: Case, accumulate: Accumulation) -> None:
        pass

    slow_r, fine_r = _run(_fake("slow", slow), _fake("fine", fine), max_examples=20)
    assert fine_r.seconds > 0
    # 20 sleeps of 2 ms are the slow member's alone; the drawing is shared out equally.
    assert slow_r.seconds - fine_r.seconds >= 20 * 0.002


@pytest.mark.parametrize("model", ["float32", "input"])
def test_every_member_is_checked_under_the_runs_accumulation_model(model: Accumulation) -> None:
    seen: list[str] = []

    def check(impl: Implementation, case: Case, accumulate: Accumulation) -> None:
        seen.append(accumulate)

    (result,) = _run(_fake("recorder", check), accumulate=model, max_examples=5)
    assert result.status == "passed"
    assert seen
    assert set(seen) == {model}
