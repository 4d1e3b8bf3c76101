"""Verdicts at the ci profile on kernels written with column blocks and in half precision.

Each kernel in tests/kernel_impls.py is checked by ``verify`` at the ci profile with
the default (unrestricted) shapes, so the long rows the strategies draw are what
catch the block-boundary bugs; the half-precision kernels are judged by the default
accumulation model (float32 or wider, rounded once).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import kernel_impls as k
import numpy as np
import pytest
from conftest import require

from softmax_verify import verify
from softmax_verify.core.domain import Domain
from softmax_verify.core.options import Options
from softmax_verify.invariants import INVARIANTS
from softmax_verify.target.local import LocalImplementation

FORWARD = tuple(inv.id for inv in INVARIANTS if not inv.needs_backward)
# The invariants that compare values (the others are exact and pass on any of these).
VALUES = ("rows_sum_to_one", "matches_reference", "permutation_equivariance")


def _failed(report: Any) -> set[tuple[str, str]]:
    return {(r.invariant, r.dtype) for r in report.results if r.status == "failed"}


@pytest.mark.parametrize(
    ("forward", "dtypes"),
    [
        (k.online_ceil_128, ("float64", "float32")),
        (k.half_wide_accumulation, ("float16", "bfloat16")),
    ],
    ids=["online_ceil_128", "half_wide_accumulation"],
)
def test_correct_kernels_pass_every_forward_invariant(
    forward: Callable[..., Any], dtypes: tuple[str, ...]
) -> None:
    if "bfloat16" in dtypes:
        require("ml_dtypes")
    report = verify(forward, dtypes=dtypes, profile="ci", invariants=FORWARD)
    assert report.passed, report.to_text()
    assert {r.dtype for r in report.results} == set(dtypes)


def test_float32_sequential_loop_passes_at_8192_columns() -> None:
    """Sequential float32 sums of 8192 terms (constant rows among them) stay in budget."""
    report = verify(
        k.float32_sequential,
        dtypes=("float32",),
        profile="ci",
        invariants=FORWARD,
        domain=Domain(cols=(8192, 8192)),
    )
    assert report.passed, report.to_text()


@pytest.mark.parametrize("value", [0.0, 1.0 / 3.0, -7.1, 88.0, 1e4])
def test_float32_sequential_loop_on_constant_rows_of_8192(value: float) -> None:
    from softmax_verify.invariants._forward import matches_reference, rows_sum_to_one

    x = np.full((2, 8192), value, dtype=np.float32)
    x[1, ::3] += np.float32(0.5)  # a second row with three levels: inexact exps
    impl = LocalImplementation(k.float32_sequential, None, timeout=None)
    matches_reference(impl, {"x": x})
    rows_sum_to_one(impl, {"x": x})


@pytest.mark.parametrize(
    ("forward", "dtypes", "longer_than"),
    [
        (k.online_floor_128, ("float64", "float32"), 128),
        (k.online_floor_1024, ("float64", "float32"), 1024),
    ],
    ids=["block_128", "block_1024"],
)
def test_block_tail_bugs_are_caught_on_long_rows(
    forward: Callable[..., Any], dtypes: tuple[str, ...], longer_than: int
) -> None:
    report = verify(forward, dtypes=dtypes, profile="ci", invariants=VALUES)
    failed = _failed(report)
    assert {dt for _, dt in failed} == set(dtypes), report.to_text()
    for r in report.results:
        if r.status == "failed":
            assert r.counterexample is not None
            d = r.counterexample["x"].shape[1]
            # The minimal case is a row the bug really breaks: past one block, not a multiple.
            assert d > longer_than, (r.invariant, d)
            assert d % longer_than != 0, (r.invariant, d)


def test_block_tail_bug_passes_on_a_domain_of_whole_blocks() -> None:
    """Declared domain: with every row a multiple of 128 columns, the bug cannot show."""
    report = verify(
        k.online_floor_128,
        dtypes=("float64",),
        profile="ci",
        invariants=VALUES,
        domain=Domain(cols=(128, 2048), cols_multiple_of=128),
    )
    assert report.passed, report.to_text()
    assert "multiple of 128" in report.to_text()


@pytest.mark.parametrize(
    ("forward", "dtype"),
    [(k.float16_sequential, "float16"), (k.bfloat16_rounded_intermediates, "bfloat16")],
    ids=["float16_sequential", "bfloat16_rounded_intermediates"],
)
def test_half_kernels_outside_the_float32_model_fail(
    forward: Callable[..., Any], dtype: str
) -> None:
    if dtype == "bfloat16":
        require("ml_dtypes")
    report = verify(forward, dtypes=(dtype,), profile="ci", invariants=VALUES)
    assert ("matches_reference", dtype) in _failed(report), report.to_text()
    assert "float32 or wider" in report.to_text()


def test_float16_sequential_fails_by_far_on_long_constant_rows() -> None:
    """The issue's figure: a constant row of 4096 sums to 2048 in float16, y off by 2x."""
    from softmax_verify.core.errors import InvariantViolation
    from softmax_verify.invariants._forward import matches_reference

    x = np.zeros((1, 4096), dtype=np.float16)
    impl = LocalImplementation(k.float16_sequential, None, timeout=None)
    with pytest.raises(InvariantViolation) as caught:
        matches_reference(impl, {"x": x})
    assert caught.value.mismatch is not None
    assert caught.value.mismatch.max_rel_error == pytest.approx(1.0)


def test_float16_sequential_is_caught_on_random_long_rows() -> None:
    """About 12 % off on random rows of 4096: the float32-model bound is near u_h = 5e-4."""
    from softmax_verify.core.errors import InvariantViolation
    from softmax_verify.invariants._forward import matches_reference

    x = np.random.default_rng(1).normal(0.0, 1.0, (2, 4096)).astype(np.float16)
    impl = LocalImplementation(k.float16_sequential, None, timeout=None)
    with pytest.raises(InvariantViolation) as caught:
        matches_reference(impl, {"x": x})
    assert caught.value.mismatch is not None
    assert caught.value.mismatch.max_rel_error > 0.1


def test_float16_sequential_passes_the_input_accumulation_model_on_short_rows() -> None:
    """--accumulate input: the same kernel is within the input-dtype bound where it is
    informative (short rows); where it is vacuous nothing is claimed either way."""
    report = verify(
        k.float16_sequential,
        dtypes=("float16",),
        profile="ci",
        invariants=VALUES,
        domain=Domain(cols=(1, 64)),
        options=Options(accumulate="input"),
    )
    assert report.passed, report.to_text()
    assert "the input dtype" in report.to_text()


def test_cli_checks_bfloat16_in_the_child_and_reports_the_case(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Isolated (the default): the bfloat16 counterexample crosses the process boundary."""
    require("ml_dtypes")
    from softmax_verify.cli import main

    target = f"{k.__file__}:bfloat16_rounded_intermediates"
    argv = ["check", target, "--dtype", "bfloat16", "--invariant", "matches_reference"]
    assert main([*argv, "--format", "json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["accumulate"].startswith("float32 or wider")
    (result,) = data["results"]
    assert result["status"] == "failed"
    assert result["dtype"] == "bfloat16"
    assert result["counterexample"]["x"]
