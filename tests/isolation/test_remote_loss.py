"""A cross-entropy target in a child process, through the LossImplementation interface.

``RemoteLossImplementation`` must give what the in-process implementation gives (values,
the upstream, the mutation flags), labels travelling as encoded arrays both ways, and must
check what comes back as if the code itself had returned it: the loss a floating scalar
or one value per row, dx a floating array of x's shape, each flag a bool.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from softmax_verify.core import cross_entropy as oracle
from softmax_verify.core.errors import ImplementationError
from softmax_verify.core.options import Options
from softmax_verify.isolation.remote_loss import RemoteLossImplementation
from softmax_verify.isolation.verifier import remote_target
from softmax_verify.isolation.wire import encode_array
from softmax_verify.target.load import TargetSpec

STYLES = str(Path(__file__).resolve().parents[1] / "ce_styles.py")
X = np.random.default_rng(3).normal(0.0, 2.0, (4, 6))
Y = np.array([5, 0, 2, 2])
Q = oracle.targets(Y, 6)


def _remote(target: str | None, **options: Any) -> RemoteLossImplementation:
    spec = TargetSpec(target, None, Options(kind="cross_entropy", **options))
    impl = remote_target(spec)
    assert isinstance(impl, RemoteLossImplementation)
    impl.load()
    return impl


@pytest.fixture
def remote(request: pytest.FixtureRequest) -> Iterator[RemoteLossImplementation]:
    target, options = request.param
    impl = _remote(target, **options)
    yield impl
    impl.close()
    assert impl.leftovers == []


@pytest.mark.parametrize(
    "remote",
    [(None, {}), (f"{STYLES}:SoftmaxCrossEntropy", {})],
    indirect=True,
    ids=["reference", "layer"],
)
def test_loss_and_gradient_come_back_from_the_child(remote: RemoteLossImplementation) -> None:
    assert remote.has_backward
    assert remote.takes_upstream
    assert remote.reading is not None
    call = remote.loss(X, Y)
    np.testing.assert_allclose(call.loss, oracle.loss(X, Q, "mean"), rtol=1e-13)
    assert (call.mutated_x, call.mutated_labels) == (False, False)
    grad = remote.grad(X, Y, np.asarray(-3.0))
    np.testing.assert_allclose(grad.dx, oracle.vjp(X, Q, "mean", -3.0), rtol=1e-12, atol=1e-16)
    losses = remote.loss_each([(X[:1], Y[:1]), (X[1:], Y[1:])])
    np.testing.assert_allclose(losses[0], oracle.loss(X[:1], Q[:1], "mean"), rtol=1e-13)
    np.testing.assert_allclose(losses[1], oracle.loss(X[1:], Q[1:], "mean"), rtol=1e-13)


@pytest.mark.parametrize(
    "remote", [(None, {"reduction": "none", "labels": "probs"})], indirect=True, ids=["rows"]
)
def test_rows_of_labels_and_an_upstream_vector_travel_both_ways(
    remote: RemoteLossImplementation,
) -> None:
    q = np.full((4, 6), 0.0625)
    q[:, 1] += 0.625
    loss = remote.loss(X, q).loss
    assert loss.shape == (4,)
    np.testing.assert_allclose(loss, oracle.row_losses(X, q), rtol=1e-13)
    g = np.array([1.0, 0.0, -2.0, 0.5])
    np.testing.assert_allclose(remote.grad(X, q, g).dx, oracle.vjp(X, q, "none", g), rtol=1e-12)


@pytest.mark.parametrize(
    "remote", [(f"{STYLES}:InPlaceCrossEntropy", {})], indirect=True, ids=["in-place"]
)
def test_a_write_into_the_cache_is_seen_through_the_child(
    remote: RemoteLossImplementation,
) -> None:
    assert remote.grad(X, Y, np.asarray(1.0)).mutated_cache


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (("ok", encode_array(np.zeros((4, 1))), False, False), r"a loss of shape \(4, 1\)"),
        (("ok", encode_array(np.zeros((), np.int64)), False, False), r"dtype int64"),
        (("ok", encode_array(np.zeros(())), "yes", False), "corrupted the verifier's channel"),
        (("ok", "not an array", False, False), "corrupted the verifier's channel"),
    ],
)
def test_what_the_child_sends_back_is_checked(
    monkeypatch: pytest.MonkeyPatch, reply: tuple[Any, ...], message: str
) -> None:
    impl = _remote(None)
    try:
        assert impl._child is not None
        monkeypatch.setattr(impl._child, "request", lambda request, limit: reply)
        with pytest.raises(ImplementationError, match=message):
            impl.loss(X, Y)
    finally:
        impl.close()


def test_a_gradient_of_the_wrong_shape_from_the_child_is_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    impl = _remote(None)
    try:
        assert impl._child is not None
        reply = ("ok", encode_array(np.zeros((4, 5))), False, False, False, False)
        monkeypatch.setattr(impl._child, "request", lambda request, limit: reply)
        with pytest.raises(ImplementationError, match=r"dx of shape \(4, 5\); expected \(4, 6\)"):
            impl.grad(X, Y, np.asarray(1.0))
    finally:
        impl.close()
