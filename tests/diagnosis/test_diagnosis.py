"""The diagnosis: each known mistake named on code that makes it, and on nothing else.

Every catalogue entry is named on its own implementation (tests/diagnosis_impls.py)
at each dtype where the mistake exists; correct code, near misses and two-mistake
code never get a wrong one; every region is produced by a bug with that region;
and ``verify``, the report and the pytest contract carry the result.
"""

from __future__ import annotations

import importlib.util
import re
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import bad_impls
import diagnosis_impls as di
import numpy as np
import pytest
from diagnosis_impls import BOTH_KNOWN, CORRECT, FORMULA_BUGS, NO_FORMULA, Impl
from diagnosis_impls import stable as stable_forward
from numpy.typing import NDArray

from softmax_verify import verify
from softmax_verify.bundled.reference import softmax, softmax_backward
from softmax_verify.bundled.staged import staged_backward, staged_forward
from softmax_verify.core.result import Result
from softmax_verify.diagnosis import Diagnosis, describe, diagnose, from_dict, to_dict
from softmax_verify.diagnosis._backward import BACKWARD_FIX, CATALOGUE
from softmax_verify.diagnosis._forward import FORWARD_FIX
from softmax_verify.run.report import Report
from softmax_verify.target.local import LocalImplementation
from softmax_verify.testing import SoftmaxContract

BOTH = ("float64", "float32")
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
FORMULA_IDS = {
    "diagonal_only",
    "identity_backward",
    "scaled_backward",
    "sum_sign_flipped",
    "unweighted_sum",
    "upstream_missing_in_sum",
    "sum_term_missing",
    "log_softmax_backward",
    "batch_axis_reduction",
    "uses_input_not_output",
    "derivative_at_output",
    "no_max_shift",
    "epsilon_in_denominator",
    "temperature",
    "wrong_normalization_axis",
    "clipped_probabilities",
    "reduced_precision",
    "dtype_changed",
    "mutates_input",
}


def load_example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"diagnosis_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def failed(invariant: str, dtype: str, case: dict[str, Any] | None = None) -> Result:
    return Result(invariant, dtype, "failed", 1, 0.0, "failed", counterexample=case)


def diagnosed(impl: Impl, dtype: str) -> tuple[Diagnosis, ...]:
    """The diagnosis after a (stated) failure at ``dtype``: formulas and mutation only."""
    code = LocalImplementation(impl.forward, impl.backward)
    return diagnose(code, [failed("matches_reference", dtype)], [dtype])


def named(diagnoses: tuple[Diagnosis, ...]) -> set[str]:
    return {d.id for d in diagnoses if d.kind != "region"}


def by_id(diagnoses: tuple[Diagnosis, ...]) -> dict[str, Diagnosis]:
    return {d.id: d for d in diagnoses}


# --- the catalogue -----------------------------------------------------------------------


def test_every_catalogue_id_has_its_own_bad_implementation() -> None:
    covered = {i for impl in FORMULA_BUGS for i in impl.ids}
    assert covered == FORMULA_IDS
    assert {e.id for e in CATALOGUE} | {"scaled_backward"} <= FORMULA_IDS


@pytest.mark.parametrize("dtype", BOTH)
@pytest.mark.parametrize("impl", FORMULA_BUGS, ids=lambda i: i.name)
def test_each_mistake_is_named_on_its_own_implementation(impl: Impl, dtype: str) -> None:
    result = diagnosed(impl, dtype)
    expected = set(impl.ids) if dtype in impl.dtypes else set()
    assert named(result) == expected
    for d in result:
        assert d.summary
        assert d.fix
        assert d.evidence.startswith(f"{dtype}: ")


@pytest.mark.parametrize("impl", BOTH_KNOWN, ids=lambda i: i.name)
def test_two_known_mistakes_are_both_named(impl: Impl) -> None:
    for dtype in BOTH:
        assert named(diagnosed(impl, dtype)) == set(impl.ids)


@pytest.mark.parametrize("dtype", BOTH)
@pytest.mark.parametrize("impl", NO_FORMULA, ids=lambda i: i.name)
def test_near_misses_and_combined_mistakes_get_no_formula(impl: Impl, dtype: str) -> None:
    """Each is within 1e-3 of a catalogue formula, or two of them at once: no guess."""
    assert named(diagnosed(impl, dtype)) == set()


#: Mistakes whose formula a 1 + 1e-3 factor leaves in the catalogue (k absorbs it) or that
#: are not formulas of the values (a dtype, a write).
_FACTOR_KEEPS = {"scaled_backward", "dtype_changed", "mutates_input"}


def _scaled_by(func: Any, factor: float) -> Any:
    def scaled(*args: Any) -> Any:
        out = func(*args)
        return (out * factor).astype(out.dtype)

    return scaled


@pytest.mark.parametrize(
    "impl", [i for i in FORMULA_BUGS if not set(i.ids) & _FACTOR_KEEPS], ids=lambda i: i.name
)
def test_each_formula_can_fail_on_its_near_miss(impl: Impl) -> None:
    """The same code with its output scaled by 1 + 1e-3: no longer that formula, nor any."""
    factor = 1 + 1e-3
    if impl.backward is None:
        near = Impl(impl.name, _scaled_by(impl.forward, factor), None, ())
    else:
        near = Impl(impl.name, impl.forward, _scaled_by(impl.backward, factor), ())
    for dtype in impl.dtypes:
        assert named(diagnosed(impl, dtype)) == set(impl.ids)
        assert named(diagnosed(near, dtype)) == set()


@pytest.mark.parametrize("dtype", BOTH)
@pytest.mark.parametrize("impl", CORRECT, ids=lambda i: i.name)
def test_correct_code_gets_no_diagnosis(impl: Impl, dtype: str) -> None:
    assert diagnosed(impl, dtype) == ()


@pytest.mark.parametrize("dtype", BOTH)
@pytest.mark.parametrize("name", ["staged", "notebook_fixed"])
def test_staged_correct_code_gets_no_diagnosis(name: str, dtype: str) -> None:
    """Code that returns a cache and every stage's gradient by name, as the notebook does."""
    if name == "staged":
        forward, backward = staged_forward, staged_backward
    else:
        fixed = load_example("notebook_fixed")
        forward, backward = fixed.softmax_forward, fixed.softmax_backward
    code = LocalImplementation(forward, backward)
    assert diagnose(code, [failed("stage_gradients", dtype)], [dtype]) == ()


@pytest.mark.parametrize("dtype", BOTH)
def test_correct_code_gets_no_region_either(dtype: str) -> None:
    """Even when told it failed, with a counterexample to build region probes from."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 4)).astype(dtype)
    dout = rng.normal(size=(3, 4)).astype(dtype)
    code = LocalImplementation(bad_impls.stable, bad_impls.correct_backward)
    results = [
        failed("backward_matches_reference", dtype, {"x": x, "dout": dout}),
        failed("matches_reference", dtype, {"x": x}),
    ]
    assert diagnose(code, results, [dtype]) == ()


def test_nothing_failed_means_no_probing() -> None:
    """Only after a failure: a buggy implementation whose run passed is not diagnosed."""
    code = LocalImplementation(stable_forward, di.diagonal_only)
    passed = Result("rows_sum_to_one", "float64", "passed", 10, 0.0, "held")
    assert diagnose(code, [passed]) == ()


def test_parameters_are_reported() -> None:
    def summary(impl: Impl, dtype: str = "float64") -> str:
        (d,) = diagnosed(impl, dtype)
        return d.summary

    impls = {impl.name: impl for impl in FORMULA_BUGS}
    assert "k = 2 times" in summary(impls["doubled"])
    assert "k = -1 times" in summary(impls["sign_flipped"])
    assert "(a sign flip)" in summary(impls["sign_flipped"])
    assert "epsilon = 0.0001" in summary(impls["epsilon_in_denominator"], "float32")
    assert "T = 2" in summary(impls["temperature"])
    assert "T = 0.5" in summary(impls["sharpened"], "float32")
    assert "[1e-07, 0.9999999]" in summary(impls["clipped_probabilities"])
    assert "(each column)" in summary(impls["column_sum"])
    assert "over the whole batch" in summary(impls["batch_sum"])
    assert "returns float64 for float32 input" in summary(impls["upcasting"], "float32")
    assert "writes to its input x" in summary(impls["mutating_forward"])
    assert "writes to its input dout" in summary(impls["mutating_backward"])
    assert "writes to the cache" in summary(impls["cache_mutating_backward"])


def _run_fix(fix: str, names: dict[str, NDArray[Any]]) -> dict[str, Any]:
    namespace: dict[str, Any] = {"np": np, **names}
    exec(fix, namespace)  # the fix is code a user can paste: run it as such
    return namespace


@pytest.mark.parametrize("dtype", BOTH)
def test_the_fixes_compute_softmax_and_its_vjp(dtype: str) -> None:
    """The fix formulas the report prints are the correct computation."""
    rng = np.random.default_rng(1)
    x = rng.normal(0.0, 30.0, (4, 6)).astype(dtype)
    dout = rng.normal(size=(4, 6)).astype(dtype)
    y = _run_fix(FORWARD_FIX, {"x": x})["y"]
    np.testing.assert_allclose(y, softmax(x), rtol=1e-5 if dtype == "float32" else 1e-13)
    dx = _run_fix(BACKWARD_FIX, {"y": y, "dout": dout})["dx"]
    np.testing.assert_allclose(
        dx, softmax_backward(dout, y), rtol=1e-5, atol=1e-6 if dtype == "float32" else 1e-14
    )


def test_every_formula_fix_starts_from_the_correct_formula() -> None:
    for impl in FORMULA_BUGS:
        for d in diagnosed(impl, impl.dtypes[0]):
            if d.id not in ("dtype_changed", "mutates_input"):
                assert d.fix.startswith((FORWARD_FIX, BACKWARD_FIX)), d.id


# --- regions -----------------------------------------------------------------------------

REGIONS = [
    ("square_dispatch", di.square_dispatch, None, "matches_reference", "only_when_n_equals_d"),
    (
        "first_row_sum",
        di.stable,
        di.first_row_sum,
        "backward_matches_reference",
        "only_when_n_gt_1",
    ),
    ("mean_centred", di.stable, di.mean_centred, "backward_matches_reference", "only_when_d_gt_1"),
    (
        "blocked_sum",
        di.blocked_sum,
        None,
        "matches_reference",
        "only_when_d_not_multiple_of_block",
    ),
    (
        "dropped_tail_block",
        di.dropped_tail_block,
        None,
        "matches_reference",
        "only_when_d_not_multiple_of_block",
    ),
    ("no_max_shift", di.no_max_shift, None, "finite_for_finite_input", "only_for_large_logits"),
    (
        "doubled_in_float32",
        di.stable,
        di.doubled_in_float32,
        "backward_matches_reference",
        "only_at_float32",
    ),
    ("float32_inside", di.float32_inside, None, "matches_reference", "only_at_float64"),
]


@pytest.mark.parametrize(
    ("forward", "backward", "invariant", "region"),
    [r[1:] for r in REGIONS],
    ids=[r[0] for r in REGIONS],
)
def test_each_region_is_found_on_a_bug_that_has_it(
    forward: Any, backward: Any, invariant: str, region: str
) -> None:
    report = verify(forward, backward, dtypes=BOTH, invariants=[invariant], max_examples=50, seed=1)
    assert not report.passed
    regions = {d.id: d for d in report.diagnosis if d.kind == "region"}
    assert set(regions) == {region}
    assert regions[region].summary.startswith(invariant)
    # "only when D > 1" names no cause (most mistakes are invisible on a row of one entry),
    # so it has no fix; every other region's fix follows from the region.
    assert bool(regions[region].fix) is (region != "only_when_d_gt_1")


def test_region_parameters_are_reported() -> None:
    report = verify(di.blocked_sum, dtypes=BOTH, invariants=["matches_reference"], seed=1)
    assert (
        "not a multiple of 8 (block size 8)"
        in by_id(report.diagnosis)["only_when_d_not_multiple_of_block"].summary
    )
    report = verify(di.no_max_shift, dtypes=BOTH, invariants=["rows_sum_to_one"], seed=1)
    summary = by_id(report.diagnosis)["only_for_large_logits"].summary
    thresholds = {dt: value for value, dt in re.findall(r"([\d.]+) at (float\d\d)", summary)}
    assert float(thresholds["float64"]) == pytest.approx(np.log(np.finfo(np.float64).max), 1e-3)
    assert float(thresholds["float32"]) == pytest.approx(np.log(np.finfo(np.float32).max), 1e-3)


def test_a_dropped_tail_block_is_named_with_its_block_size() -> None:
    report = verify(di.dropped_tail_block, dtypes=BOTH, invariants=["matches_reference"], seed=1)
    region = by_id(report.diagnosis)["only_when_d_not_multiple_of_block"]
    assert "not a multiple of 16 (block size 16)" in region.summary
    assert "D % 16 != 0 and D > 16" in region.evidence


def test_a_large_logit_region_fix_follows_its_threshold() -> None:
    """A fix only where the threshold says what overflows: exp's limit (no max shift), or
    float32's largest value (float64 code computing in float32, which does shift)."""
    report = verify(di.no_max_shift, dtypes=BOTH, invariants=["finite_for_finite_input"], seed=1)
    assert "subtract the row maximum" in by_id(report.diagnosis)["only_for_large_logits"].fix
    report = verify(di.float32_inside, dtypes=("float64",), seed=1)
    found = by_id(report.diagnosis)
    # Named although finite_for_finite_input's counterexample (logits near 1e308) gives NaN.
    assert found["reduced_precision"].kind == "formula"
    large = found["only_for_large_logits"]
    assert "3.403e+38" in large.summary
    assert "subtract the row maximum" not in large.fix
    assert "float32's largest value" in large.fix
    report = verify(di.row_max_column_sum, dtypes=BOTH, seed=1)
    found = by_id(report.diagnosis)
    assert found["wrong_normalization_axis"].summary.startswith(
        "the forward subtracts each row's maximum"
    )
    assert found["only_for_large_logits"].fix == ""  # a threshold of no known limit
    lines = describe(report.diagnosis, [(r.invariant, r.dtype) for r in report.failures])
    (at,) = [i for i, line in enumerate(lines) if "only_for_large_logits (region)" in line]
    assert lines[at + 1].startswith("    evidence: ")  # no fix line printed


def test_probing_stops_at_its_budget() -> None:
    """No time left: nothing is named, since a formula needs every probe."""
    x = np.full((2, 3), 800.0)
    code = LocalImplementation(di.no_max_shift)
    result = failed("finite_for_finite_input", "float64", {"x": x, "dout": np.ones_like(x)})
    assert diagnose(code, [result], budget=0.0) == ()
    assert named(diagnose(code, [result])) == {"no_max_shift"}


# --- report, verify and the contract -----------------------------------------------------


def test_verify_attaches_the_diagnosis_only_on_failure() -> None:
    bad = verify(stable_forward, di.diagonal_only, invariants=["backward_matches_reference"])
    assert "diagonal_only" in named(bad.diagnosis)
    good = verify(stable_forward, di.vjp, invariants=["backward_matches_reference"])
    assert good.passed
    assert good.diagnosis == ()


def test_report_text_and_json() -> None:
    d = Diagnosis("diagonal_only", "formula", "what it does", "dx = ...", "numbers", ("a",))
    report = Report(
        "t", None, "ci", 1, (failed("a", "float64"), failed("b", "float32")), diagnosis=(d,)
    )
    text = report.to_text()
    section = text[text.index("\nDiagnosis\n") :]
    assert "  diagonal_only (formula): what it does\n    fix: dx = ...\n" in section
    assert "    evidence: numbers\n" in section
    assert "  no known pattern for: b (float32)" in section
    assert report.to_dict()["diagnosis"] == [
        {
            "id": "diagonal_only",
            "kind": "formula",
            "summary": "what it does",
            "fix": "dx = ...",
            "evidence": "numbers",
        }
    ]
    empty = Report("t", None, "ci", 1, (failed("a", "float64"),))
    assert empty.to_dict()["diagnosis"] == []
    assert "  no known pattern for: a (float64)" in empty.to_text()
    assert describe((d,), []) == []  # nothing failed: no section at all


def test_diagnosis_round_trips_as_plain_data() -> None:
    d = Diagnosis("x", "region", "s", "f", "e", ("inv",))
    assert from_dict({**to_dict(d), "explains": ["inv"]}) == d


def test_contract_failure_message_carries_the_diagnosis() -> None:
    class Diagonal(SoftmaxContract):
        forward = staticmethod(stable_forward)
        backward = staticmethod(di.diagonal_only)
        dtypes = ("float64",)

    with pytest.raises(pytest.fail.Exception) as info:
        Diagonal().test_backward_matches_reference("float64")  # type: ignore[attr-defined]  # set per invariant
    message = str(info.value)
    assert "backward_matches_reference" in message
    # The message is indented by two under its first line, as pytest prints it.
    assert "\n  Diagnosis\n    diagonal_only (formula): " in message
    assert f"      fix: {BACKWARD_FIX}" in message


def test_a_call_that_overruns_stops_the_probing() -> None:
    """Every probe of a hanging forward would wait its time limit: one overrun ends it all."""
    calls: list[int] = []

    def hangs(x: NDArray[Any]) -> NDArray[Any]:
        calls.append(1)
        time.sleep(5.0)
        return softmax(x)

    code = LocalImplementation(hangs, timeout=0.1)
    x = np.zeros((2, 3))
    assert diagnose(code, [failed("matches_reference", "float64", {"x": x})]) == ()
    assert len(calls) == 1


def test_a_known_and_an_unknown_mistake_name_only_the_known_one() -> None:
    """Smoothed probabilities (in no catalogue) and a diagonal-only backward (at its own y)."""
    code = LocalImplementation(di.smoothed, di.diagonal_only)
    results = [failed("matches_reference", "float64"), failed("jacobian_psd", "float64")]
    found = diagnose(code, results)
    assert named(found) == {"diagonal_only"}
    text = "\n".join(describe(found, [(r.invariant, r.dtype) for r in results]))
    assert "no known pattern for: matches_reference (float64)" in text
    assert "jacobian_psd" not in text.split("no known pattern")[1]
