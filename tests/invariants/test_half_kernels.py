"""Half-precision kernels that compute in the half dtype (tests/half_kernels.py), judged by each
accumulation model, at the ci profile.

- Right ones, and the bundled reference at half precision, pass under ``--accumulate input``
  (the probabilistic model) and ``input-worst-case``; the half-in-half ones fail the default
  model (float32 accumulation, rounded once) by a few ulps, and the diagnosis says that
  ``--accumulate input`` accepts them.
- jax's float16 gradient mistake (``s ** -2`` formed in float16), in jax itself and written
  out here, is caught under the default model and under ``input``; only the worst case,
  whose bound allows nearly any error on long rows, lets it through, and the diagnosis says
  so without explaining the failure.
- The sequential half-precision row sum is within the worst case and beyond the
  probabilistic bound on a long constant row: its errors are not independent.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import half_kernels as h
import numpy as np
import pytest
from conftest import require

from softmax_verify import verify
from softmax_verify.bundled.reference import (
    log_softmax,
    log_softmax_backward,
    softmax,
    softmax_backward,
)
from softmax_verify.core.domain import Domain
from softmax_verify.core.errors import InvariantViolation
from softmax_verify.core.options import Accumulation, Options
from softmax_verify.invariants._forward import matches_reference, rows_sum_to_one
from softmax_verify.run.report import Report
from softmax_verify.target.local import LocalImplementation

HALF = ("float16", "bfloat16")
Pair = tuple[Callable[..., Any], Callable[..., Any] | None]

RIGHT: dict[str, Pair] = {
    "pairwise": (h.pairwise, h.pairwise_backward),
    "float32_reduction": (h.float32_reduction, h.pairwise_backward),
    "reference": (softmax, softmax_backward),
}


def _run(pair: Pair, dtype: str, model: Accumulation, **kwargs: Any) -> Report:
    if dtype == "bfloat16":
        require("ml_dtypes")
    return verify(*pair, dtypes=(dtype,), options=Options(accumulate=model), **kwargs)


def _failed(report: Report) -> set[str]:
    return {r.invariant for r in report.results if r.status in ("failed", "error")}


@pytest.mark.parametrize("model", ["input", "input-worst-case"])
@pytest.mark.parametrize("dtype", HALF)
@pytest.mark.parametrize("name", list(RIGHT))
def test_right_half_kernels_pass_the_input_models(name: str, dtype: str, model: str) -> None:
    report = _run(RIGHT[name], dtype, model)  # type: ignore[arg-type]  # one of ACCUMULATIONS
    assert report.passed, report.to_text()


@pytest.mark.parametrize("dtype", HALF)
def test_the_reference_passes_every_model_at_half_precision(dtype: str) -> None:
    """It computes in float32 and rounds once: exactly the default model's kernel."""
    assert _run((softmax, softmax_backward), dtype, "float32").passed
    if dtype == "bfloat16":
        require("ml_dtypes")
    log = verify(
        log_softmax,
        log_softmax_backward,
        dtypes=(dtype,),
        kind="log_softmax",
        options=Options(accumulate="input"),
    )
    assert log.passed, log.to_text()


def test_a_half_in_half_kernel_fails_the_default_model_and_the_report_names_input() -> None:
    report = _run(RIGHT["pairwise"], "float16", "float32")
    assert not report.passed
    (model,) = [d for d in report.diagnosis if d.kind == "model"]
    assert "under --accumulate input (" in model.summary
    assert "--accumulate input" in model.fix
    assert set(model.explains) >= {"matches_reference"}
    # Every failure is explained by the model: no region hint ("only when D > 1"), and no
    # failure of "no known pattern".
    assert set(model.explains) == _failed(report)
    assert not [d for d in report.diagnosis if d.kind == "region"]
    assert "no known pattern" not in report.to_text()


@pytest.mark.parametrize("model", ["float32", "input"])
def test_the_squared_sum_gradient_is_caught_under_both_models(model: str) -> None:
    pair = (h.unnormalized_forward, h.squared_sum_backward)
    report = _run(pair, "float16", model)  # type: ignore[arg-type]  # one of ACCUMULATIONS
    assert {"ones_upstream_gives_zero"} <= _failed(report)


def test_the_squared_sum_gradient_is_within_the_worst_case_and_the_report_says_so() -> None:
    pair = (h.unnormalized_forward, h.squared_sum_backward)
    assert _run(pair, "float16", "input-worst-case").passed
    report = _run(pair, "float16", "input")
    models = [d for d in report.diagnosis if d.kind == "model"]
    assert [m.summary.split(" under ")[1].split(" (")[0] for m in models] == [
        "--accumulate input-worst-case"
    ]
    assert models[0].explains == ()  # the worst case explains nothing
    assert "input-worst-case" in models[0].fix


@pytest.mark.parametrize("model", ["float32", "input"])
def test_sum_term_missing_is_caught_under_both_models(model: str) -> None:
    report = _run((h.pairwise, h.sum_term_missing), "float16", model)  # type: ignore[arg-type]  # one of ACCUMULATIONS
    assert {"backward_matches_reference", "gradient_rows_sum_to_zero"} <= _failed(report)


def test_a_stalling_sequential_sum_is_beyond_the_probabilistic_bound() -> None:
    """float16, a constant row of 4096: the running sum stops at 2048 (every y doubled)."""
    x = np.full((2, 4096), 0.5, dtype=np.float16)
    impl = LocalImplementation(h.sequential, None, timeout=None)
    for check in (matches_reference, rows_sum_to_one):
        check(impl, {"x": x}, "input-worst-case")
        with pytest.raises(InvariantViolation):
            check(impl, {"x": x}, "input")
    report = _run((h.sequential, None), "float16", "input", domain=Domain(cols=(4096, 4096)))
    assert "matches_reference" in _failed(report)


@pytest.mark.parametrize("model", ["float32", "input"])
def test_jax_float16_gradient_is_caught_under_both_models(model: Accumulation) -> None:
    """``softmax-verify check jax --dtype float16 [--accumulate input]``: the gradient of an
    all-equal upstream sums to 1 on rows of 256 (s ** 2 overflows float16). Under ``input``
    jax's float16 forward, computed in float16, passes (no false alarm)."""
    require("jax")
    from softmax_verify.target.frameworks import adapter

    forward, backward = adapter("jax")
    report = verify(forward, backward, dtypes=("float16",), options=Options(accumulate=model))
    failed = _failed(report)
    assert "ones_upstream_gives_zero" in failed
    if model == "input":
        assert not failed & {"matches_reference", "rows_sum_to_one", "shift_invariance"}
