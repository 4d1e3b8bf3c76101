"""The half-precision accumulation models of softmax_verify.tolerances, passed as ``accumulate``."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from conftest import require

from softmax_verify.bundled.reference import softmax
from softmax_verify.core.options import Accumulation
from softmax_verify.core.parallel import map_blocks
from softmax_verify.tolerances import (
    VACUOUS,
    _model,
    chain,
    forward_error_bound,
    forward_relative_bound,
    gamma,
    row_sum_bound,
    unit_roundoff,
)

U16 = 2.0**-11
U32 = 2.0**-24


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("model", ["float32", "input", "input-worst-case"])
def test_float32_and_float64_keep_the_one_model(dtype: type, model: Accumulation) -> None:
    n = np.array([1.0, 70.0, 8200.0])
    assert np.array_equal(chain(n, dtype, model), gamma(n, dtype))
    assert _model(dtype, model) == (unit_roundoff(dtype), 0.0)


def test_float32_model_for_half_is_float32_roundings_then_one_half_rounding() -> None:
    x = np.array([[0.0, -1.0, -5.0] + [0.0] * 4093])
    eta = forward_relative_bound(x, np.float16, accumulate="float32")
    d = x.shape[1]
    k = d + 10 + math.log(d)
    for i, t in enumerate((0.0, 1.0, 5.0)):
        nu = (k + t) * U32
        assert eta[0, i] == pytest.approx(U16 + (1 + U16) * nu / (1 - nu), rel=1e-12)
    # Informative at 4096: about 1.5 u_h, where the input-dtype model is vacuous.
    assert eta.max() < 1.6 * U16
    assert (forward_relative_bound(x, np.float16, accumulate="input-worst-case") == VACUOUS).all()
    # Without the keyword: the default model, float32.
    assert np.array_equal(forward_relative_bound(x, np.float16), eta)


def test_worst_case_input_model_is_gamma_of_the_half_dtype_on_short_rows() -> None:
    x = np.array([[0.0, -2.0, -3.5, 1.0]])
    eta = forward_relative_bound(x, np.float16, accumulate="input-worst-case")
    nu = (4 + 10 + math.log(4) + (1.0 - x[0])) * U16
    assert np.allclose(eta[0], nu / (1 - nu), rtol=1e-12)


def test_vacuous_bound_still_zero_where_the_probability_is_zero() -> None:
    """t >= 746: y_i = 0 in float64, so eta_i y_i must be 0, not VACUOUS * 0 = NaN issues."""
    x = np.array([[0.0] * 2000 + [-800.0]])
    eta = forward_relative_bound(x, np.float16, accumulate="input-worst-case")
    bound = forward_error_bound(x, softmax(x), np.float16, accumulate="input-worst-case")
    assert eta[0, -1] == 0.0
    assert eta[0, 0] == VACUOUS
    assert np.isfinite(bound).all()


def test_row_sum_bound_for_half() -> None:
    # float32 model: a few u_h even at 8192; input-worst-case: gamma_D of the half dtype.
    assert row_sum_bound(8192, np.float16, accumulate="float32") < 4 * U16
    assert row_sum_bound(64, np.float16, accumulate="input-worst-case") == pytest.approx(
        float(gamma(64 + 10 + 2 * math.log(64), np.float16))
        + 64 * float(np.finfo(np.float16).smallest_normal)
        + float(gamma(64, np.float64))
    )
    assert row_sum_bound(4096, np.float16, accumulate="input-worst-case") >= VACUOUS


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_accumulation_rejects_unknown_models(dtype: type) -> None:
    bogus: Any = "float8"  # not an Accumulation: what an unchecked caller could pass
    with pytest.raises(ValueError, match="accumulate"):
        _model(dtype, bogus)
    with pytest.raises(ValueError, match="accumulate"):
        chain(10, dtype, bogus)
    with pytest.raises(ValueError, match="accumulate"):
        forward_relative_bound(np.zeros((1, 4)), dtype, accumulate=bogus)


def test_the_model_reaches_the_worker_threads() -> None:
    blocks = [(i, i + 1) for i in range(8)]
    seen = map_blocks(lambda _block: _model(np.float16, "input-worst-case"), blocks)
    assert set(seen) == {(U16, 0.0)}
    assert set(map_blocks(lambda _block: _model(np.float16, "float32"), blocks)) == {(U32, U16)}


@pytest.mark.parametrize("name", ["float16", "bfloat16"])
def test_correct_half_kernel_is_within_the_float32_model_bound(name: str) -> None:
    """Float32 accumulation rounded once: the measured error stays under the bound,
    at long rows and on constant rows too, and uses a good share of it (not vacuous)."""
    if name == "bfloat16":
        require("ml_dtypes")
    from softmax_verify.core.dtypes import named_dtype

    dtype = named_dtype(name)
    rng = np.random.default_rng(0)
    worst = 0.0
    for d in (3, 129, 1025, 8192):
        x = np.vstack([rng.normal(0, 4, d), np.full(d, 3.3), rng.uniform(-30, 30, d)])
        x = x.astype(dtype)
        x32 = x.astype(np.float32)
        e = np.exp(x32 - x32.max(axis=1, keepdims=True))
        y = (e / e.sum(axis=1, keepdims=True, dtype=np.float32)).astype(dtype)
        exact = softmax(x.astype(np.float64))
        err = np.abs(y.astype(np.float64) - exact)
        ratio = err / forward_error_bound(x, exact, dtype)
        assert ratio.max() <= 1.0
        worst = max(worst, float(ratio.max()))
    assert worst > 0.2  # the bound is about one half-precision rounding, not loose
