"""The cross_entropy kind's diagnosis: each catalogue id named, with exactly that id, on its own
bad code (tests/bad_ce_impls.py) at float32 and float64, with its parameter where it has one;
correct code in every convention (tests/invariants/test_cross_entropy.py's CORRECT) and the
bugs outside the catalogue named nothing; and the command's report shows it."""

from __future__ import annotations

import re
from typing import Any

import bad_ce_impls as bad
import pytest
from ce_correct import CORRECT
from conftest import cli

from softmax_verify import Options
from softmax_verify.core.result import Result
from softmax_verify.diagnosis import Diagnosis, diagnose
from softmax_verify.target.conventions import loss_implementation_from
from softmax_verify.testing import SoftmaxContract

BOTH = ("float32", "float64")

# (target, options, the id it is named with; None: nothing)
CASES: list[tuple[Any, dict[str, Any], str | None]] = [
    (bad.not_averaged_loss, {}, "gradient_not_averaged"),
    (bad.averaged_sum_loss, {"reduction": "sum"}, "gradient_not_averaged"),
    (bad.label_indexing_loss, {}, "label_indexing"),
    (bad.label_indexing_sum_loss, {}, "label_indexing"),
    (bad.no_max_shift_loss, {}, "no_max_shift"),
    (bad.d2l_scratch_loss, {}, "no_max_shift"),
    (bad.eps_in_log_loss, {}, "clipped_log"),
    (bad.clip_1e12_loss, {}, "clipped_log"),
    (bad.NnfsBookSoftmaxLoss, {}, "clipped_log"),
    (bad.log_of_softmax_loss, {}, "log_of_softmax"),
    (bad.sign_flipped_loss, {}, "loss_sign_flipped"),
    # Outside the catalogue: named nothing rather than misnamed.
    (bad.forgot_onehot_loss, {}, None),
    (bad.logit_penalty_loss, {}, None),
    (bad.first_class_bias_loss, {}, None),
    (bad.position_weighted_loss, {}, None),
]
CATALOGUE_IDS = {
    "gradient_not_averaged",
    "label_indexing",
    "no_max_shift",
    "clipped_log",
    "log_of_softmax",
    "loss_sign_flipped",
}


def _diagnosed(
    target: Any, dtype: str, backward: Any = None, **options: Any
) -> tuple[Diagnosis, ...]:
    chosen = Options(kind="cross_entropy", **options)
    impl, _ = loss_implementation_from(target, backward, chosen.read, chosen.loss, timeout=None)
    failed = Result("matches_reference", dtype, "failed", 1, 0.0, "failed")
    return diagnose(impl, [failed], [dtype], kind="cross_entropy")


def _name(target: Any) -> str:
    return str(getattr(target, "__qualname__", type(target).__name__))


def test_every_catalogue_id_has_its_own_bad_code() -> None:
    assert {case[2] for case in CASES} - {None} == CATALOGUE_IDS


@pytest.mark.parametrize("dtype", BOTH)
@pytest.mark.parametrize(("target", "options", "expected"), CASES, ids=[_name(c[0]) for c in CASES])
def test_each_mistake_is_named_with_exactly_its_id(
    target: Any, options: dict[str, Any], expected: str | None, dtype: str
) -> None:
    found = _diagnosed(target, dtype, **options)
    assert {d.id for d in found} == ({expected} if expected else set()), found
    for d in found:
        assert d.kind == "formula", d
        assert d.fix, d
        assert d.evidence.startswith(dtype), d
        assert "matches_reference" in d.explains or "backward_matches_reference" in d.explains


@pytest.mark.parametrize("dtype", BOTH)
@pytest.mark.parametrize(
    ("target", "backward", "options"), CORRECT, ids=[_name(c[0]) for c in CORRECT]
)
def test_correct_code_is_never_diagnosed(
    target: Any, backward: Any, options: dict[str, Any], dtype: str
) -> None:
    assert _diagnosed(target, dtype, backward, **options) == ()


@pytest.mark.parametrize(
    ("target", "eps", "upper"),
    [
        (bad.eps_in_log_loss, 1e-7, None),
        (bad.clip_1e12_loss, 1e-12, "1 - 1e-12"),
        (bad.NnfsBookSoftmaxLoss, 1e-7, "1 - 1e-07"),
    ],
    ids=["eps_in_log", "clip_1e12", "nnfs_book"],
)
def test_clipped_log_reports_its_epsilon(target: Any, eps: float, upper: str | None) -> None:
    for dtype in BOTH:
        (d,) = _diagnosed(target, dtype)
        m = re.search(r"epsilon (\d\.?\d*e-\d+)", d.summary)
        assert m, d.summary
        assert abs(float(m.group(1)) / eps - 1) < 1e-2, d.summary
        if upper is not None and dtype == "float64":  # 1 - 1e-7 rounds to 1 in float32
            assert f", {upper}))" in d.summary, d.summary
        assert "deliberate deviation" in d.summary, d.summary
        assert "confidently wrong" in d.summary, d.summary


def test_log_of_softmax_reports_the_gap_it_fails_from_at_each_dtype() -> None:
    gaps = {}
    for dtype in BOTH:
        (d,) = _diagnosed(bad.log_of_softmax_loss, dtype)
        gaps[dtype] = float(re.findall(r"label gap of ([\d.]+)$", d.evidence)[0])
    # Where p_y's subnormal rounding leaves the loss bound: about 95 in float32 and 718 in
    # float64 for the row [0, -t, -1, -2.5]; p_y rounds to 0 (loss inf) beyond 104 and 745.
    assert 90 < gaps["float32"] < 104, gaps
    assert 700 < gaps["float64"] < 745.2, gaps


def test_the_command_reports_the_diagnosis(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(
        capsys,
        "check",
        "tests/bad_ce_impls.py:label_indexing_loss",
        "--kind",
        "cross_entropy",
        "--dtype",
        "float64",
        "--max-examples",
        "20",
    )
    assert code == 1, out
    assert "Diagnosis" in out, out
    assert "label_indexing (formula)" in out, out
    assert "no known pattern for: batch_consistency" not in out, out


def test_the_contract_reports_the_diagnosis() -> None:
    class Contract(SoftmaxContract):
        kind = "cross_entropy"
        forward = staticmethod(bad.not_averaged_loss)

    with pytest.raises(pytest.fail.Exception, match="gradient_not_averaged \\(formula\\)"):
        Contract().test_backward_matches_reference("float64")  # type: ignore[attr-defined]  # generated
