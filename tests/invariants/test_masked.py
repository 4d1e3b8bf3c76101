"""Masked rows (``masked=True``): -inf entries get exactly 0, the rest is the softmax of the
unmasked subset, fully masked rows follow the documented semantics."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given
from numpy.typing import NDArray

import softmax_verify.strategies as sv_st
from softmax_verify import verify
from softmax_verify.core.options import Options
from softmax_verify.invariants import invariants_for
from softmax_verify.run.runner import run_invariant
from softmax_verify.target.local import LocalImplementation

A = NDArray[Any]
MASKED_IDS = ("masked_entries_exactly_zero", "masked_rows_match_subset", "fully_masked_rows")


def masked_softmax(x: A) -> A:
    """Attention-style: fully masked rows give 0, like kernels that skip them."""
    finite = np.isfinite(x)
    m = np.where(finite, x, -np.inf).max(axis=1, keepdims=True)
    e = np.where(finite, np.exp(x - np.where(np.isfinite(m), m, 0.0)), 0.0)
    s = e.sum(axis=1, keepdims=True)
    return np.asarray(np.where(s > 0, e / np.where(s > 0, s, 1.0), 0.0)).astype(x.dtype)


def masked_backward(dout: A, y: A) -> A:
    return np.asarray(y * (dout - (dout * y).sum(axis=1, keepdims=True)))


def plain_softmax(x: A) -> A:
    """The textbook stable softmax: a fully masked row is 0/0 = NaN, like torch.softmax."""
    with np.errstate(invalid="ignore"):
        e = np.exp(x - x.max(axis=1, keepdims=True))
        return np.asarray(e / e.sum(axis=1, keepdims=True))


def leaky_softmax(x: A) -> A:
    """Emulates the mask with a large negative number: leaks where logits are near -1e4."""
    return masked_softmax(np.where(np.isneginf(x), np.asarray(-1e4, dtype=x.dtype), x))


def one_entry_nan_softmax(x: A) -> A:
    """Guards empty rows with an off-by-one: a row with one unmasked entry becomes NaN."""
    count = np.isfinite(x).sum(axis=1, keepdims=True)
    return np.where(count > 1, masked_softmax(x), np.asarray(np.nan, dtype=x.dtype))


def finite_garbage_backward(dout: A, y: A) -> A:
    """Gives a fully masked row the upstream itself as its gradient."""
    dx = masked_backward(dout, y)
    full = ~(y != 0).any(axis=1)
    dx[full] = dout[full]
    return dx


def test_masked_invariants_join_only_with_masked() -> None:
    plain = {inv.id for inv in invariants_for("softmax")}
    masked = {inv.id for inv in invariants_for("softmax", masked=True)}
    assert masked - plain == set(MASKED_IDS)


@given(sv_st.masked_logits(np.float32))
def test_masked_logits_draw_masked_entries_and_finite_others(x: A) -> None:
    assert x.dtype == np.float32
    assert x.flags.c_contiguous
    assert not np.isnan(x).any()
    assert not np.isposinf(x).any()


@pytest.mark.parametrize("forward", [masked_softmax, plain_softmax])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_correct_masked_softmax_passes(forward: Any, dtype: str) -> None:
    report = verify(
        forward,
        masked_backward,
        dtypes=(dtype,),
        seed=3,
        invariants=MASKED_IDS,
        options=Options(masked=True),
    )
    assert report.passed, report.to_text()


@pytest.mark.parametrize(
    ("forward", "backward", "invariant"),
    [
        (leaky_softmax, None, "masked_entries_exactly_zero"),
        (leaky_softmax, None, "masked_rows_match_subset"),
        (one_entry_nan_softmax, None, "masked_rows_match_subset"),
        (masked_softmax, finite_garbage_backward, "fully_masked_rows"),
    ],
)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_bad_masked_softmax_is_rejected(
    forward: Any, backward: Any, invariant: str, dtype: str
) -> None:
    impl = LocalImplementation(forward, backward)
    result = run_invariant(invariant, impl, dtype, profile="ci")
    assert result.status == "failed", result
    assert result.counterexample is not None


def test_one_entry_nan_shrinks_to_a_row_with_one_unmasked_entry() -> None:
    impl = LocalImplementation(one_entry_nan_softmax)
    result = run_invariant("masked_rows_match_subset", impl, np.float64, profile="ci")
    assert result.counterexample is not None
    x = result.counterexample["x"]
    assert (np.isfinite(x).sum(axis=1) == 1).any()


def test_masked_is_validated() -> None:
    with pytest.raises(TypeError, match="masked must be a bool"):
        verify(masked_softmax, options=Options(masked="yes"))  # type: ignore[arg-type]  # the bad type is the test


def test_cli_masked_runs_the_masked_checks_in_the_child(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from softmax_verify.cli import main

    assert main(["list", "--masked"]) == 0
    assert "fully_masked_rows" in capsys.readouterr().out
    status = main(["check", "--masked", "--invariant", "fully_masked_rows", "--format", "json"])
    out = capsys.readouterr().out
    assert status == 0
    assert '"fully_masked_rows"' in out
