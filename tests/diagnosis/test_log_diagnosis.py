"""log_softmax's diagnosis: every catalogue entry named on code that makes the mistake, at each
dtype where it exists; near misses and correct code (in the styles it is written in) never
get one; and verify, the report and the command diagnose a log_softmax as they do a softmax.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import cli
from diagnosis_impls import Impl
from log_diagnosis_impls import LOG_CORRECT, LOG_FORMULA_BUGS, LOG_NO_FORMULA, shifted

from softmax_verify import verify
from softmax_verify.core.result import Result
from softmax_verify.diagnosis import Diagnosis, diagnose
from softmax_verify.diagnosis._log_backward import LOG_BACKWARD_FIX, LOG_CATALOGUE
from softmax_verify.diagnosis._log_forward import LOG_FORWARD_FIX
from softmax_verify.target.local import LocalImplementation

BOTH = ("float64", "float32")
LOG_IDS = {
    "log_of_softmax",
    "logsumexp_cancellation",
    "wrong_normalization_axis",
    "reduced_precision",
    "dtype_changed",
    "mutates_input",
    "diagonal_only",
    "identity_backward",
    "sum_sign_flipped",
    "upstream_missing_in_sum",
    "softmax_backward",
    "batch_axis_reduction",
    "log_output_not_exponentiated",
    "scaled_backward",
}


def failed(invariant: str, dtype: str) -> Result:
    return Result(invariant, dtype, "failed", 1, 0.0, "failed")


def diagnosed(impl: Impl, dtype: str) -> tuple[Diagnosis, ...]:
    code = LocalImplementation(impl.forward, impl.backward)
    return diagnose(code, [failed("matches_reference", dtype)], [dtype], kind="log_softmax")


def named(found: tuple[Diagnosis, ...]) -> set[str]:
    return {d.id for d in found if d.kind != "region"}


def test_every_log_catalogue_id_has_its_own_bad_implementation() -> None:
    assert {i for impl in LOG_FORMULA_BUGS for i in impl.ids} == LOG_IDS
    assert {e.id for e in LOG_CATALOGUE} <= LOG_IDS


@pytest.mark.parametrize("dtype", BOTH)
@pytest.mark.parametrize("impl", LOG_FORMULA_BUGS, ids=lambda i: i.name)
def test_each_mistake_is_named_on_its_own_implementation(impl: Impl, dtype: str) -> None:
    found = diagnosed(impl, dtype)
    assert named(found) == (set(impl.ids) if dtype in impl.dtypes else set())
    for d in found:
        assert d.evidence.startswith(f"{dtype}: ")
        if d.kind == "formula" and d.id not in ("dtype_changed",):
            assert d.fix.startswith((LOG_FORWARD_FIX, LOG_BACKWARD_FIX)), d.id


@pytest.mark.parametrize("dtype", BOTH)
@pytest.mark.parametrize("impl", LOG_NO_FORMULA, ids=lambda i: i.name)
def test_near_misses_get_no_formula(impl: Impl, dtype: str) -> None:
    assert named(diagnosed(impl, dtype)) == set()


def test_the_maximum_added_back_before_subtracting_is_caught() -> None:
    """``x - (m + log s)``: correct in exact arithmetic, it cancels at m's scale. Found by a
    thorough run when it stood among the correct styles; the ci profile fails it too."""
    (impl,) = [i for i in LOG_NO_FORMULA if i.name == "logsumexp_then_subtract"]
    report = verify(impl.forward, impl.backward, dtypes=("float32",), kind="log_softmax")
    failed = {r.invariant for r in report.results if r.status == "failed"}
    assert {"matches_reference", "shift_invariance"} <= failed, report.to_text()


@pytest.mark.parametrize("dtype", BOTH)
@pytest.mark.parametrize("impl", LOG_CORRECT, ids=lambda i: i.name)
def test_correct_code_gets_no_diagnosis(impl: Impl, dtype: str) -> None:
    assert diagnosed(impl, dtype) == ()


@pytest.mark.parametrize("dtype", BOTH)
def test_the_fixes_compute_log_softmax_and_its_vjp(dtype: str) -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(0.0, 30.0, (4, 6)).astype(dtype)
    dout = rng.normal(size=(4, 6)).astype(dtype)
    forward: dict[str, object] = {"np": np, "x": x}
    exec(LOG_FORWARD_FIX, forward)  # the fix is code a user can paste: run it as such
    z = forward["z"]
    assert isinstance(z, np.ndarray)
    np.testing.assert_allclose(z, shifted(x.astype(np.float64)), atol=1e-4, rtol=1e-5)
    backward: dict[str, object] = {"np": np, "z": z, "dout": dout}
    exec(LOG_BACKWARD_FIX, backward)
    dx = backward["dx"]
    assert isinstance(dx, np.ndarray)
    expected = dout - np.exp(z) * dout.sum(axis=-1, keepdims=True)
    np.testing.assert_allclose(dx, expected, rtol=1e-6)


def test_verify_diagnoses_a_log_softmax() -> None:
    impls = {impl.name: impl for impl in LOG_FORMULA_BUGS}
    report = verify(impls["unshifted"].forward, dtypes=BOTH, kind="log_softmax", seed=1)
    assert "logsumexp_cancellation" in named(report.diagnosis)
    assert "no known pattern" not in report.to_text().split("Diagnosis")[1].split("\n")[1]
    report = verify(shifted, impls["forgotten_sum"].backward, kind="log_softmax", seed=1)
    assert named(report.diagnosis) == {"upstream_missing_in_sum"}


def test_the_command_diagnoses_a_log_softmax(
    capsys: pytest.CaptureFixture[str], in_repo_root: None
) -> None:
    code, out, _ = cli(
        capsys,
        "check",
        "tests/log_diagnosis_impls.py:shifted",
        "--backward",
        "tests/log_diagnosis_impls.py:softmax_vjp",
        "--kind",
        "log_softmax",
        "--invariant",
        "backward_matches_reference",
    )
    assert code == 1
    assert "softmax_backward (formula): the backward is softmax's" in out
