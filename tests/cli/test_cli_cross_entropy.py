"""``softmax-verify check --kind cross_entropy`` and ``list --kind cross_entropy`` on code in
the shapes people write it (tests/ce_styles.py): the reading stated on the ``read as:``
line, the label form and reduction reaching the isolated child and the reproduce line, a
failure for wrong code, and one usage line for options that do not fit the kind."""

from __future__ import annotations

import json

import pytest
from conftest import cli

STYLES = "tests/ce_styles.py"
FEW = ("--max-examples", "10")

pytestmark = pytest.mark.usefixtures("in_repo_root")


@pytest.mark.parametrize(
    ("target", "extra", "read_as"),
    [
        (
            f"{STYLES}:softmax_loss",
            (),
            "read as: function; forward softmax_loss(x, labels) -> (loss, dx); backward the dx "
            "it returns; grad of the mean loss, at upstream 1; labels index; axis -1",
        ),
        (
            f"{STYLES}:lse_loss",
            ("--backward", f"{STYLES}:lse_grad"),
            "backward lse_grad(x, labels) -> dx; grad of the mean loss, at upstream 1",
        ),
        (
            f"{STYLES}:Activation_Softmax_Loss_CategoricalCrossentropy",
            (),
            ".backward(the forward's probabilities (.output), labels) -> .dinputs",
        ),
        (f"{STYLES}:SoftmaxClassifier.loss", (), "loss(x, labels) -> (loss, dx)"),
        (
            f"{STYLES}:SoftmaxCrossEntropy",
            ("--labels", "probs"),
            ".backward(dout=the upstream) -> dx",
        ),
        (f"{STYLES}:RowLosses", ("--reduction", "none"), "labels index"),
    ],
)
def test_each_style_passes_and_the_report_says_how_it_was_read(
    capsys: pytest.CaptureFixture[str], target: str, extra: tuple[str, ...], read_as: str
) -> None:
    code, out, err = cli(capsys, "check", target, "--kind", "cross_entropy", *extra, *FEW)
    assert code == 0, out + err
    line = out.splitlines()[1]
    assert line.startswith("read as: ")
    assert read_as in line, line
    assert "FAILED" not in out
    assert "ERROR" not in out


def test_the_default_target_follows_the_kind(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "check", "--kind", "cross_entropy", "--dtype", "float64", *FEW)
    assert code == 0, out + err
    assert "cross_entropy(x, labels) -> loss" in out.splitlines()[1]
    assert "loss_nonnegative" in out
    assert "jacobian_psd" not in out


def test_a_missing_division_by_n_fails_with_the_options_on_the_reproduce_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = cli(
        capsys,
        "check",
        f"{STYLES}:not_averaged_loss",
        "--kind",
        "cross_entropy",
        "--labels",
        "onehot",
        "--invariant",
        "backward_matches_reference",
        "--dtype",
        "float64",
        "--format",
        "json",
        *FEW,
    )
    assert code == 1
    doc = json.loads(out)
    assert doc["results"][0]["status"] == "failed"
    assert "--labels onehot" in doc["command"]
    assert "--kind cross_entropy" in doc["command"]


def test_list_shows_the_kinds_invariants_and_notation(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "list", "--kind", "cross_entropy")
    assert code == 0
    ids = [line.split()[0] for line in out.splitlines() if line and not line[0].isspace()]
    assert "loss_nonnegative" in ids
    assert "batch_consistency" in ids
    assert "jacobian_psd" not in ids
    assert "where L: the loss under test" in out


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (("--labels", "onehot"), "labels"),
        (("--reduction", "sum"), "reduction"),
    ],
)
def test_loss_options_on_a_softmax_are_a_usage_line(
    capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], named: str
) -> None:
    code, out, err = cli(capsys, "check", *argv, *FEW)
    assert code == 2
    assert named in err
    assert "Traceback" not in out + err
    assert len(err.strip().splitlines()) == 1, err
