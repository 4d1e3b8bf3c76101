"""``RunPlan``: the one setup that ``verify``, the command and the isolated runner share.

The options are validated once, with the messages ``verify`` gives; a random profile's
seed is drawn once and is the one the report carries; the pairs run in report order.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from softmax_verify.core.domain import Domain
from softmax_verify.core.options import Options
from softmax_verify.isolation.verifier import verify_isolated
from softmax_verify.run.plan import RunPlan


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"dtypes": "float64"}, TypeError, "dtypes"),
        ({"dtypes": 64}, TypeError, "dtypes"),
        ({"dtypes": ()}, ValueError, "dtypes"),
        ({"profile": "fast"}, ValueError, "profile"),
        ({"max_examples": 0}, ValueError, "max_examples"),
        ({"seed": -1}, ValueError, "seed"),
        ({"kind": "logits"}, ValueError, "kind"),
        ({"masked": 1}, TypeError, "masked"),
        ({"invariants": ["no_such_invariant"]}, ValueError, "invariant"),
        ({"invariants": ["rows_logsumexp_zero"]}, ValueError, "rows_logsumexp_zero"),
        ({"accumulate": "float16"}, ValueError, "accumulate"),
        ({"domain": (1, 4)}, TypeError, "domain"),
    ],
    ids=lambda v: repr(v) if isinstance(v, dict) else "",
)
def test_build_rejects_each_bad_option_by_name(
    kwargs: dict[str, Any], error: type[Exception], name: str
) -> None:
    with pytest.raises(error, match=name):
        RunPlan.build(Options(**kwargs))


def test_pairs_are_invariant_major_and_the_defaults_are_verifys() -> None:
    plan = RunPlan.build(Options(invariants=["rows_sum_to_one", "input_not_mutated"]))
    assert [(inv.id, dt.name) for inv, dt in plan.pairs] == [
        ("rows_sum_to_one", "float32"),
        ("rows_sum_to_one", "float64"),
        ("input_not_mutated", "float32"),
        ("input_not_mutated", "float64"),
    ]
    assert (plan.kind, plan.profile, plan.seed, plan.domain) == ("softmax", "ci", None, Domain())


def test_accumulation_is_stated_only_when_a_half_dtype_is_checked() -> None:
    assert RunPlan.build().accumulation_note == ""
    half = RunPlan.build(Options(dtypes=("float16",), accumulate="input"))
    assert "input dtype" in half.accumulation_note


def test_a_random_profile_draws_one_seed_that_the_report_carries() -> None:
    plan = RunPlan.build(Options(profile="dev", invariants=["rows_sum_to_one"], max_examples=3))
    assert isinstance(plan.seed, int)
    assert RunPlan.build(Options(profile="dev", seed=7)).seed == 7
    report = verify_isolated(None, None, plan, isolate=False)
    assert report.seed == plan.seed
    assert [(r.invariant, r.dtype, r.examples) for r in report.results] == [
        ("rows_sum_to_one", "float32", 3),
        ("rows_sum_to_one", "float64", 3),
    ]
    assert report


def test_progress_sees_each_result_of_the_isolated_run_in_order() -> None:
    seen: list[str] = []
    plan = RunPlan.build(
        Options(
            dtypes=(np.float64,),
            invariants=["rows_sum_to_one", "finite_for_finite_input"],
            max_examples=2,
        ),
        progress=lambda result: seen.append(result.invariant),
    )
    report = verify_isolated(None, None, plan)
    assert (
        seen
        == [r.invariant for r in report.results]
        == [
            "rows_sum_to_one",
            "finite_for_finite_input",
        ]
    )


def test_an_invariant_named_twice_is_checked_once() -> None:
    plan = RunPlan.build(
        Options(invariants=["rows_sum_to_one", "matches_reference", "rows_sum_to_one"])
    )
    assert [inv.id for inv in plan.invariants] == ["rows_sum_to_one", "matches_reference"]
