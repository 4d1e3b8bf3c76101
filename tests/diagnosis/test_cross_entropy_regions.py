"""The cross_entropy kind's region, ``only_for_large_logits``: named, with its threshold and
the label gap there, for a loss that is right for small logits and wrong beyond (no max
shift: from log(max); the log of an underflowing softmax: from the label gap where p_y
underflows); never for correct code in any convention, nor for a mistake that shows at
every magnitude."""

from __future__ import annotations

import math
import re
from typing import Any

import bad_ce_impls as bad
import numpy as np
import pytest
from ce_correct import CORRECT

from softmax_verify import Options, verify
from softmax_verify.core.result import Result
from softmax_verify.diagnosis import Diagnosis, diagnose
from softmax_verify.target.conventions import loss_implementation_from

BOTH = ("float32", "float64")
#: Checks whose failures the region re-runs (their cases hold logits of any magnitude).
WIDE = ("finite_for_finite_input", "matches_reference", "backward_matches_reference")


def _failed(invariant: str, dtype: str, options: Options) -> Result:
    """A failure of ``invariant`` at ``dtype`` with a counterexample in the run's label form
    and reduction (the region builds its cases from it)."""
    labels = np.array([0, 1]) if options.labels == "index" else np.eye(2, dtype=dtype)
    g = np.ones(2, dtype) if options.reduction == "none" else np.asarray(1.0, dtype)
    case = {"x": np.zeros((2, 2), dtype), "labels": labels, "g": g}
    return Result(invariant, dtype, "failed", 1, 0.0, "failed", counterexample=case)


def _diagnosed(
    target: Any, invariants: tuple[str, ...], backward: Any = None, **options: Any
) -> tuple[Diagnosis, ...]:
    chosen = Options(kind="cross_entropy", **options)
    impl, _ = loss_implementation_from(target, backward, chosen.read, chosen.loss, timeout=None)
    failed = [_failed(i, dt, chosen) for dt in BOTH for i in invariants]
    return diagnose(impl, failed, kind="cross_entropy")


def _region(found: tuple[Diagnosis, ...]) -> Diagnosis:
    regions = [d for d in found if d.kind == "region"]
    assert [d.id for d in regions] == ["only_for_large_logits"], found
    return regions[0]


def _thresholds(region: Diagnosis) -> dict[str, float]:
    pairs = re.findall(r"([\d.e+]+) at (float\d+)", region.summary)
    return {dtype: float(value) for value, dtype in pairs}


def _gaps(region: Diagnosis) -> list[float]:
    return [float(g) for g in re.findall(r"largest label gap [^)]*\) is ([\d.]+)", region.evidence)]


def test_an_unshifted_exp_fails_from_log_max_with_the_fix() -> None:
    region = _region(_diagnosed(bad.no_max_shift_loss, ("matches_reference",)))
    found = _thresholds(region)
    assert set(found) == set(BOTH), region
    for dtype, value in found.items():
        assert value == pytest.approx(math.log(float(np.finfo(dtype).max)), rel=1e-3), region
    assert "subtract the row maximum" in region.fix
    assert len(_gaps(region)) == 2, region


def test_a_log_of_softmax_fails_from_the_gap_where_p_y_underflows() -> None:
    region = _region(_diagnosed(bad.log_of_softmax_loss, ("matches_reference",)))
    # p_y = exp(-gap) leaves the loss bound near float32's smallest normal (gap ~ 87 to
    # 104 with subnormals), float64's (~ 708 to 745); the ladder's gap at the threshold
    # shows it, while its largest |x| alone (~58, ~443) would not.
    low32, low64 = _gaps(region)
    assert 87 < low32 < 104, region
    assert 708 < low64 < 746, region
    assert region.fix == "", region  # the catalogue's log_of_softmax entry carries the fix
    assert "matches_reference" in region.summary


@pytest.mark.parametrize(
    "target",
    [bad.not_averaged_loss, bad.sign_flipped_loss, bad.forgot_onehot_loss],
    ids=lambda t: t.__name__,
)
def test_a_mistake_at_every_magnitude_has_no_region(target: Any) -> None:
    found = _diagnosed(target, (*WIDE, "gradient_rows_sum_to_zero"))
    assert not [d for d in found if d.kind == "region"], found


@pytest.mark.parametrize(
    ("target", "backward", "options"),
    CORRECT,
    ids=[str(getattr(c[0], "__qualname__", type(c[0]).__name__)) for c in CORRECT],
)
def test_correct_code_never_gets_the_region(
    target: Any, backward: Any, options: dict[str, Any]
) -> None:
    assert _diagnosed(target, WIDE, backward, **options) == ()


def test_a_run_of_an_unshifted_loss_reports_the_region() -> None:
    report = verify(
        bad.no_max_shift_loss,
        options=Options(
            kind="cross_entropy", dtypes=("float32",), invariants=["matches_reference"]
        ),
    )
    assert not report.passed
    region = _region(report.diagnosis)
    assert _thresholds(region)["float32"] == pytest.approx(88.72, rel=1e-3)
