"""Cross-entropy code read as it is written: each shape of tests/ce_styles.py without an
adapter, the reading said in one line, the values those of the code, and a clear usage
error for what fits nothing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import ce_styles as s
import numpy as np
import pytest

from softmax_verify.core import cross_entropy as oracle
from softmax_verify.core.errors import ImplementationError
from softmax_verify.core.options import LossOptions, Options, ReadOptions
from softmax_verify.target.conventions import ConventionError, loss_implementation_from
from softmax_verify.target.load import TargetError, TargetSpec, load_loss_implementation

STYLES = str(Path(__file__).resolve().parents[1] / "ce_styles.py")
RNG = np.random.default_rng(7)
X = RNG.normal(0.0, 3.0, (4, 5))
Y = np.array([0, 3, 4, 3])

PROBS_BACK = ".backward(the forward's probabilities (.output), labels) -> .dinputs"
# (target, backward, expected pieces of the reading, whether the upstream is taken)
READINGS: list[tuple[Any, Callable[..., Any] | None, tuple[str, ...], bool]] = [
    (s.softmax_loss, None, ("function", "(x, labels) -> (loss, dx)", "the dx it returns"), False),
    (s.lse_loss, s.lse_grad, ("functions", "lse_grad(x, labels) -> dx", "at upstream 1"), False),
    (
        s.SoftmaxCrossEntropy,
        None,
        ("class, fresh instance per call", ".backward(dout=the upstream) -> dx", "passed"),
        True,
    ),
    (s.CrossEntropyWithProbs, None, ("-> loss or (loss, probs)", ".backward() -> dx"), False),
    (s.StoredCrossEntropy, None, ("-> .loss", ".backward(x, labels) -> dx"), False),
    (s.Activation_Softmax_Loss_CategoricalCrossentropy, None, (PROBS_BACK,), False),
    (s.SoftmaxClassifier().loss, None, ("loss(x, labels) -> (loss, dx)",), False),
    (s.SoftmaxCrossEntropy(), None, ("instance, deep copy per call",), True),
]


@pytest.mark.parametrize(("target", "backward", "pieces", "upstream"), READINGS)
def test_each_style_is_read_as_written(
    target: Any, backward: Callable[..., Any] | None, pieces: tuple[str, ...], upstream: bool
) -> None:
    impl, reading = loss_implementation_from(target, backward)
    text = reading.describe()
    for piece in pieces:
        assert piece in text, text
    assert "labels index; axis -1" in text
    assert impl.takes_upstream is upstream
    q = oracle.targets(Y, 5)
    np.testing.assert_allclose(impl.loss(X, Y).loss, oracle.loss(X, q, "mean"), rtol=1e-13)
    g = np.asarray(2.0)
    expected = oracle.vjp(X, q, "mean", g if upstream else 1.0)
    np.testing.assert_allclose(impl.grad(X, Y, g).dx, expected, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("form", ["onehot", "probs"])
def test_rows_of_labels_reach_the_code_as_rows(form: str) -> None:
    q = np.zeros((4, 5))
    q[np.arange(4), Y] = 1.0
    if form == "probs":
        q = np.full((4, 5), 0.125)
        q[:, 0] = 0.5
    impl, reading = loss_implementation_from(s.softmax_loss, loss=LossOptions(labels=form))  # type: ignore[arg-type]  # the literal is a LabelForm
    assert f"labels {form}" in reading.describe()
    np.testing.assert_allclose(impl.loss(X, q).loss, oracle.loss(X, q, "mean"), rtol=1e-13)
    np.testing.assert_allclose(
        impl.grad(X, q, np.asarray(1.0)).dx, oracle.vjp(X, q, "mean", 1.0), rtol=1e-12, atol=1e-15
    )


def test_a_per_row_loss_takes_an_upstream_vector() -> None:
    impl, reading = loss_implementation_from(s.RowLosses, loss=LossOptions(reduction="none"))
    assert "weighted by the upstream vector passed" in reading.describe()
    q = oracle.targets(Y, 5)
    loss = impl.loss(X, Y).loss
    assert loss.shape == (4,)
    np.testing.assert_allclose(loss, oracle.row_losses(X, q), rtol=1e-13)
    g = np.array([1.0, -2.0, 0.5, 3.0])
    np.testing.assert_allclose(impl.grad(X, Y, g).dx, oracle.vjp(X, q, "none", g), rtol=1e-12)


def test_a_sequence_layout_is_laid_out_with_its_labels() -> None:
    impl, reading = loss_implementation_from(s.sequence_loss, read=ReadOptions(rank=3))
    assert "rank 3, axis 2" in reading.describe()
    x, y = RNG.normal(0.0, 2.0, (6, 7)), RNG.integers(0, 7, 6)
    q = oracle.targets(y, 7)
    np.testing.assert_allclose(impl.loss(x, y).loss, oracle.loss(x, q, "mean"), rtol=1e-13)
    np.testing.assert_allclose(impl.grad(x, y, np.asarray(1.0)).dx, oracle.vjp(x, q, "mean", 1.0))


@pytest.mark.usefixtures("in_repo_root")
def test_a_method_of_a_class_is_read_through_the_target_string() -> None:
    spec = TargetSpec(f"{STYLES}:SoftmaxClassifier.loss", None, Options(kind="cross_entropy"))
    impl, reading = load_loss_implementation(spec)
    assert "loss(x, labels) -> (loss, dx)" in reading.describe()
    assert any(
        "a method of one SoftmaxClassifier() built with no arguments" in n for n in reading.notes
    )
    assert impl.has_backward


class Misspelt:
    def foward(self, x: Any, labels: Any) -> Any:
        return 0.0


class MisspeltBackward:
    def forward(self, x: Any, labels: Any) -> Any:
        return s.lse_loss(x, labels)

    def backwrd(self, dout: Any = 1.0) -> Any:
        return dout


class NeedsSize:
    def __init__(self, classes: int) -> None:
        self.classes = classes

    def forward(self, x: Any, labels: Any) -> Any:
        return 0.0


class ThreeArguments(s.SoftmaxCrossEntropy):
    def backward(self, dout: Any, x: Any, labels: Any) -> Any:  # type: ignore[override]  # the shape under test
        return dout


def one_argument(x: Any) -> Any:
    return x


@pytest.mark.parametrize(
    ("target", "message"),
    [
        (Misspelt, r"Misspelt: has no forward; tried forward, .*; did you mean foward\?"),
        (NeedsSize, r"constructor argument 'classes' has no default"),
        (ThreeArguments, r"\.backward\(dout, x, labels\) fits no loss backward"),
        (one_argument, r"one_argument\(x\) cannot be called as one_argument\(x, labels\)"),
    ],
)
def test_what_fits_no_convention_is_a_usage_error(target: Any, message: str) -> None:
    with pytest.raises(ConventionError, match=message):
        loss_implementation_from(target)


def test_a_misspelt_backward_is_named_and_the_gradient_skipped() -> None:
    impl, reading = loss_implementation_from(MisspeltBackward)
    assert not impl.has_backward
    assert any("did you mean backwrd?" in note for note in reading.notes), reading.notes


def test_writes_into_the_inputs_and_the_cache_are_seen() -> None:
    def writes_x(x: Any, labels: Any) -> Any:
        loss, dx = s.softmax_loss(x, labels)
        x *= 2
        return loss, dx

    impl, _ = loss_implementation_from(writes_x)
    assert impl.loss(X, Y).mutated_x
    assert impl.grad(X, Y, np.asarray(1.0)).mutated_x
    cached, _ = loss_implementation_from(s.InPlaceCrossEntropy)
    assert cached.grad(X, Y, np.asarray(1.0)).mutated_cache
    clean, _ = loss_implementation_from(s.CrossEntropyWithProbs)
    call = clean.grad(X, Y, np.asarray(1.0))
    assert (call.mutated_x, call.mutated_labels, call.mutated_cache) == (False, False, False)


@pytest.mark.parametrize(
    ("returned", "message"),
    [
        (lambda x: np.zeros((x.shape[0], 1)), r"a loss of shape \(4, 1\); expected a scalar \(\)"),
        (lambda x: np.asarray(3), r"the loss with dtype int64; expected a floating dtype"),
        (lambda x: None, r"returned None for the loss"),
        (lambda x: [1.0], r"returned list for the loss"),
    ],
)
def test_what_a_loss_returns_is_checked(returned: Callable[[Any], Any], message: str) -> None:
    impl, _ = loss_implementation_from(lambda x, labels: returned(x))
    with pytest.raises(ImplementationError, match=message):
        impl.loss(X, Y)


def test_a_python_float_loss_counts_as_float64() -> None:
    impl, _ = loss_implementation_from(lambda x, labels: float(s.lse_loss(x, labels)))
    loss = impl.loss(X.astype(np.float32), Y).loss
    assert (loss.dtype.name, loss.shape) == ("float64", ())


def narrow_gradient(x: Any, labels: Any) -> Any:
    dx = x[:, :-1]
    return np.float64(0.0), dx


def test_a_gradient_of_the_wrong_shape_is_an_error() -> None:
    impl, _ = loss_implementation_from(narrow_gradient)
    with pytest.raises(ImplementationError, match=r"dx of shape \(4, 4\); expected \(4, 5\)"):
        impl.grad(X, Y, np.asarray(1.0))


def test_scipy_has_no_cross_entropy() -> None:
    with pytest.raises(TargetError, match="scipy has no cross-entropy adapter"):
        load_loss_implementation(TargetSpec("scipy", None, Options(kind="cross_entropy")))
