"""log_softmax: its own invariant set, no false alarms on correct code, and every
invariant failed by a known-bad implementation."""

from __future__ import annotations

import numpy as np
import pytest
from bad_impls import Bad, stable
from bad_log_impls import BAD_LOG, correct_backward, correct_forward
from conftest import require

from softmax_verify import verify
from softmax_verify.cli import main
from softmax_verify.invariants import invariants_for
from softmax_verify.run.runner import run_invariant
from softmax_verify.target.local import LocalImplementation
from softmax_verify.testing import SoftmaxContract

LOG_IDS = tuple(inv.id for inv in invariants_for("log_softmax"))
SOFTMAX_ONLY = ("rows_sum_to_one", "outputs_in_unit_interval", "jacobian_symmetry", "jacobian_psd")


def test_log_softmax_set_leaves_out_the_softmax_only_properties() -> None:
    for softmax_only in (*SOFTMAX_ONLY, "ones_upstream_gives_zero", "stage_gradients"):
        assert softmax_only not in LOG_IDS
    for needed in (
        "rows_logsumexp_zero",
        "entries_nonpositive",
        "shift_invariance",
        "permutation_equivariance",
        "row_independence",
        "matches_reference",
        "central_differences",
        "linearity_in_upstream",
        "gradient_rows_sum_to_zero",
        "backward_matches_reference",
    ):
        assert needed in LOG_IDS
    for inv in invariants_for("log_softmax"):
        assert inv.doc, inv.id
        assert inv.summary, inv.id


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_correct_log_softmax_passes_every_invariant(dtype: str) -> None:
    report = verify(correct_forward, correct_backward, dtypes=(dtype,), kind="log_softmax", seed=1)
    assert report.passed, report.to_text()
    assert {r.invariant for r in report.results} == set(LOG_IDS)


def test_scipy_log_softmax_passes() -> None:
    special = require("scipy.special")
    report = verify(
        lambda x: special.log_softmax(x, axis=1),
        correct_backward,
        dtypes=("float64", "float32"),
        kind="log_softmax",
        seed=2,
    )
    assert report.passed, report.to_text()


def test_a_log_softmax_fails_the_softmax_set_and_a_softmax_the_log_set() -> None:
    as_softmax = verify(correct_forward, invariants=["rows_sum_to_one"])
    assert not as_softmax.passed
    as_log = verify(
        stable, kind="log_softmax", invariants=["entries_nonpositive", "rows_logsumexp_zero"]
    )
    assert [r.status for r in as_log.results] == ["failed"] * 4  # two invariants, two dtypes


EXPECTED = [
    pytest.param(bad, inv, dtype, id=f"{bad.name}-{inv}-{dtype}")
    for bad in BAD_LOG
    for inv in bad.fails
    for dtype in bad.dtypes
]


@pytest.mark.parametrize(("bad", "invariant", "dtype"), EXPECTED)
def test_bad_log_softmax_is_rejected(bad: Bad, invariant: str, dtype: str) -> None:
    impl = LocalImplementation(bad.forward, bad.backward, timeout=10.0)
    result = run_invariant(invariant, impl, dtype, profile="ci", kind="log_softmax")
    assert result.status == "failed", result
    assert result.counterexample is not None
    assert result.message


def test_every_log_softmax_invariant_is_failed_by_some_bad_implementation() -> None:
    assert {inv for bad in BAD_LOG for inv in bad.fails} == set(LOG_IDS)


def test_softmax_vjp_on_log_softmax_keeps_gradient_row_sums_at_zero() -> None:
    """The rows of y * (g - <g, y>) sum to zero too: only the reference and central
    differences tell it from the log_softmax VJP."""
    bad = next(b for b in BAD_LOG if b.name == "softmax_vjp")
    impl = LocalImplementation(bad.forward, bad.backward)
    result = run_invariant("gradient_rows_sum_to_zero", impl, np.float64, kind="log_softmax")
    assert result.status == "passed"


def test_kind_is_validated() -> None:
    with pytest.raises(ValueError, match="kind must be one of softmax, log_softmax"):
        verify(correct_forward, kind="logsoftmax")
    with pytest.raises(TypeError, match="kind must be one of"):
        verify(correct_forward, kind=None)  # type: ignore[arg-type]  # the bad type is the test


class TestLogSoftmaxContract(SoftmaxContract):
    """The pytest contract with ``kind = "log_softmax"`` collects that kind's set."""

    forward = staticmethod(correct_forward)
    backward = staticmethod(correct_backward)
    kind = "log_softmax"


def test_log_softmax_contract_collects_the_log_softmax_set() -> None:
    collected = {
        name[len("test_") :]
        for name in dir(TestLogSoftmaxContract)
        if name.startswith("test_")
        and getattr(TestLogSoftmaxContract, name) is not None
        and name != "test_log_softmax_contract_collects_the_log_softmax_set"
    }
    assert collected == set(LOG_IDS)


def test_contract_rejects_an_unknown_kind() -> None:
    with pytest.raises(ValueError, match=r"TestBad\.kind must be one of"):

        class TestBad(SoftmaxContract):
            forward = staticmethod(correct_forward)
            kind = "sigmoid"  # type: ignore[assignment]  # an unknown kind is the test


def test_cli_lists_and_checks_log_softmax(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "--kind", "log_softmax"]) == 0
    listing = capsys.readouterr().out.split("\nwhere ")[0]  # the notation follows the ids
    listed = [line.split()[0] for line in listing.splitlines() if not line.startswith(" ")]
    assert listed == list(LOG_IDS)
    status = main(
        [
            "check",
            "tests/bad_log_impls.py:max_not_added_back_forward",
            "--kind",
            "log_softmax",
            "--invariant",
            "entries_nonpositive",
            "--no-isolate",
        ]
    )
    out = capsys.readouterr().out
    assert status == 1
    assert "entries_nonpositive" in out
    assert "--kind log_softmax" in out


def test_cli_rejects_an_invariant_of_another_kind(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["check", "--kind", "log_softmax", "--invariant", "jacobian_psd"])
    assert status == 2
    assert "for kind 'log_softmax'" in capsys.readouterr().err
