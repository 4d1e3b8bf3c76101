"""Masked rows for log_softmax (``kind="log_softmax", masked=True``): -inf entries get
exactly -inf (and 0 gradient for a 0 upstream), the rest is the log_softmax of the
unmasked subset, fully masked rows are all -inf or all NaN."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from conftest import require
from numpy.typing import NDArray

from softmax_verify import verify
from softmax_verify.core.options import Options
from softmax_verify.invariants import SUMMARIES, invariants_for
from softmax_verify.run.runner import run_invariant
from softmax_verify.target.local import LocalImplementation

A = NDArray[Any]
MASKED_IDS = ("masked_entries_exactly_zero", "masked_rows_match_subset", "fully_masked_rows")


def masked_log_softmax(x: A) -> A:
    """Attention-style: fully masked rows give -inf, the log of the all-zero row."""
    finite = np.isfinite(x)
    m = np.where(finite, x, -np.inf).max(axis=1, keepdims=True)
    shifted = x - np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):
        lse = np.log(np.where(finite, np.exp(shifted), 0.0).sum(axis=1, keepdims=True))
    return np.asarray(np.where(np.isfinite(lse), shifted - lse, -np.inf)).astype(x.dtype)


def plain_log_softmax(x: A) -> A:
    """The textbook stable form: a fully masked row is -inf - (-inf) = NaN."""
    with np.errstate(invalid="ignore"):
        shifted = x - x.max(axis=1, keepdims=True)
        return np.asarray(shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True)))


def log_backward(dout: A, z: A) -> A:
    """g - exp(z) * sum(g): the derivative of the formula (g at a masked entry)."""
    return np.asarray(dout - np.exp(z) * dout.sum(axis=1, keepdims=True))


def constant_mask_backward(dout: A, z: A) -> A:
    """The mask as a constant: 0 at masked entries, sums over the unmasked ones only."""
    kept = np.where(np.isneginf(z), 0, dout)
    return np.asarray(kept - np.exp(z) * kept.sum(axis=1, keepdims=True))


def leaky_log_softmax(x: A) -> A:
    """Emulates the mask with a large negative number: masked entries get a finite value,
    and leak probability where the unmasked logits are near -1e4."""
    return masked_log_softmax(np.where(np.isneginf(x), np.asarray(-1e4, dtype=x.dtype), x))


def zeroed_mask_backward(dout: A, z: A) -> A:
    """Replaces the -inf logits' log-probabilities by 0 to keep NaN out of the backward:
    the masked entries then take weight e^0 = 1 in the sum."""
    y = np.exp(np.where(np.isneginf(z), 0, z))
    return np.asarray(dout - y * dout.sum(axis=1, keepdims=True))


def one_entry_nan_log_softmax(x: A) -> A:
    """Guards empty rows with an off-by-one: a row with one unmasked entry becomes NaN."""
    count = np.isfinite(x).sum(axis=1, keepdims=True)
    return np.where(count > 1, masked_log_softmax(x), np.asarray(np.nan, dtype=x.dtype))


def zero_filled_log_softmax(x: A) -> A:
    """Fills a fully masked row with 0 (log-probability 0: probability 1 everywhere)."""
    z = masked_log_softmax(x)
    z[np.isneginf(x).all(axis=1)] = 0
    return z


def test_masked_log_softmax_invariants_join_only_with_masked() -> None:
    plain = {inv.id for inv in invariants_for("log_softmax")}
    masked = invariants_for("log_softmax", masked=True)
    assert {inv.id for inv in masked} - plain == set(MASKED_IDS)
    for inv in masked:
        if inv.id in MASKED_IDS:
            assert inv.kinds == ("log_softmax",)
            assert inv.doc
            assert inv.summary != SUMMARIES[inv.id]  # the log_softmax reading


@pytest.mark.parametrize(
    ("forward", "backward"),
    [(masked_log_softmax, log_backward), (plain_log_softmax, constant_mask_backward)],
)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_correct_masked_log_softmax_passes(forward: Any, backward: Any, dtype: str) -> None:
    report = verify(
        forward,
        backward,
        dtypes=(dtype,),
        kind="log_softmax",
        seed=3,
        invariants=MASKED_IDS,
        options=Options(masked=True),
    )
    assert report.passed, report.to_text()
    assert len(report.results) == 3


def test_torch_log_softmax_passes_the_masked_checks() -> None:
    torch = require("torch")

    def forward(x: A) -> A:
        out: A = torch.log_softmax(torch.from_numpy(x), dim=1).numpy()
        return out

    report = verify(
        forward,
        log_backward,
        kind="log_softmax",
        seed=4,
        invariants=MASKED_IDS,
        options=Options(masked=True),
    )
    assert report.passed, report.to_text()


@pytest.mark.parametrize(
    ("forward", "backward", "invariant"),
    [
        (leaky_log_softmax, None, "masked_entries_exactly_zero"),
        (leaky_log_softmax, None, "masked_rows_match_subset"),
        (masked_log_softmax, zeroed_mask_backward, "masked_entries_exactly_zero"),
        (one_entry_nan_log_softmax, None, "masked_rows_match_subset"),
        (zero_filled_log_softmax, None, "fully_masked_rows"),
    ],
)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_bad_masked_log_softmax_is_rejected(
    forward: Any, backward: Any, invariant: str, dtype: str
) -> None:
    impl = LocalImplementation(forward, backward)
    result = run_invariant(invariant, impl, dtype, profile="ci", kind="log_softmax")
    assert result.status == "failed", result
    assert result.counterexample is not None


def test_masked_log_cases_have_no_upstream_at_masked_entries() -> None:
    """dout is 0 where x is -inf: there the two right conventions agree."""
    from hypothesis import given, settings

    inv = next(i for i in invariants_for("log_softmax", masked=True) if i.id == "fully_masked_rows")

    @settings(max_examples=30, derandomize=True, database=None)
    @given(inv.cases(np.dtype(np.float32)))
    def check(case: dict[str, A]) -> None:
        assert (case["dout"][np.isneginf(case["x"])] == 0).all()

    check()
