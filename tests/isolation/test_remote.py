"""The implementation in a child process, through the Implementation interface.

``RemoteImplementation`` must behave as the in-process ``Implementation`` does for the
invariants and the gradient checks (mutation flags, named cache arrays, stage sources),
and the verifier must read nothing from the child but builtins and plain arrays.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from softmax_verify.core.errors import ImplementationError
from softmax_verify.core.implementation import lookup
from softmax_verify.core.options import Options
from softmax_verify.isolation.remote import RemoteCache, RemoteImplementation
from softmax_verify.isolation.wire import WireError, decode_array, encode_array, loads_untrusted
from softmax_verify.run.runner import run_invariant
from softmax_verify.target.load import TargetSpec

TESTS = Path(__file__).resolve().parents[1]
EXAMPLES = TESTS.parent / "examples"


@pytest.fixture
def remote(request: pytest.FixtureRequest) -> Iterator[RemoteImplementation]:
    forward, backward = request.param
    impl = RemoteImplementation(TargetSpec(forward, backward))
    impl.load()
    yield impl
    impl.close()
    assert impl.leftovers == []


BAD = str(TESTS / "bad_impls.py")


@pytest.mark.parametrize(
    "remote",
    [(f"{BAD}:mutating_forward", None), (f"{BAD}:stable", f"{BAD}:mutating_backward")],
    indirect=True,
    ids=["forward", "backward"],
)
def test_mutation_of_the_inputs_is_seen_through_the_child(remote: RemoteImplementation) -> None:
    result = run_invariant("input_not_mutated", remote, "float64", max_examples=20)
    assert result.status == "failed"
    assert "wrote to its input" in result.message


@pytest.mark.parametrize(
    "remote",
    [(str(EXAMPLES / "notebook_fixed.py"), None)],
    indirect=True,
)
def test_named_cache_arrays_and_stage_sources_come_from_the_child(
    remote: RemoteImplementation,
) -> None:
    x = np.random.default_rng(0).standard_normal((3, 5))
    call = remote.forward(x)
    assert isinstance(call.cache, RemoteCache)
    exps = lookup(call.cache, "exps")
    assert isinstance(exps, np.ndarray)
    np.testing.assert_allclose(exps, np.exp(x - x.max(axis=1, keepdims=True)), rtol=1e-12)
    assert lookup(call.cache, "no_such_array") is None
    back = remote.backward(np.ones_like(x), call.cache)
    assert "dexps_0" in back.stages
    assert back.mutated_dout is False
    assert back.mutated_cache is False
    source = remote.source_of("dexps_0")
    assert source is not None
    assert "notebook_fixed.py:" in source


def test_the_unpickler_builds_no_object_beyond_builtins() -> None:
    class Exploit:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (os.system, ("true",))

    with pytest.raises(WireError, match="only builtins are accepted"):
        loads_untrusted(pickle.dumps(("ok", Exploit())))
    with pytest.raises(WireError, match="only builtins are accepted"):
        loads_untrusted(pickle.dumps(np.zeros(3)))
    assert loads_untrusted(pickle.dumps(("ok", [1, 2.5, None, b"x"], {"a": "b"}))) == (
        "ok",
        [1, 2.5, None, b"x"],
        {"a": "b"},
    )
    with pytest.raises(WireError, match="unreadable"):
        loads_untrusted(b"\x80\x05garbage")


def test_arrays_travel_bit_for_bit_and_only_as_numbers() -> None:
    nan_payload = np.array([0x7FF8_0000_0000_0123], dtype=np.uint64).view(np.float64)
    for value in (
        np.asfortranarray(np.array([[-0.0, nan_payload[0]], [np.inf, 5e-324]])),
        np.array([[1.5, -np.inf]], dtype=np.float32),
        np.array(-0.0),
        np.arange(6, dtype=np.int64).reshape(2, 3),
    ):
        back = decode_array(encode_array(value))
        assert back.dtype == value.dtype
        assert back.shape == value.shape
        assert back.tobytes() == np.ascontiguousarray(value).tobytes()
        assert back.flags.writeable
    with pytest.raises(WireError, match="not a numeric dtype"):
        decode_array(("nd", "|O", (1,), b"\0" * 8))
    with pytest.raises(WireError, match="do not match"):
        decode_array(("nd", "<f8", (2,), b"\0" * 8))
    with pytest.raises(WireError, match="shape"):
        decode_array(("nd", "<f8", [2], b"\0" * 16))


@pytest.mark.parametrize("remote", [(None, None)], indirect=True)
def test_forward_each_makes_every_call_in_one_round_trip(
    remote: RemoteImplementation, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert remote._child is not None
    trips: list[str] = []
    send = remote._child.request

    def counted(message: tuple[Any, ...], limit: float | None, max_reply: int) -> Any:
        trips.append(message[0])
        return send(message, limit, max_reply)

    monkeypatch.setattr(remote._child, "request", counted)
    rng = np.random.default_rng(1)
    arrays = [rng.standard_normal(shape) for shape in ((1, 5), (1, 9), (3, 2))]
    ys = remote.forward_each(arrays)
    assert trips == ["forward_each"]
    for x, y in zip(arrays, ys, strict=True):
        np.testing.assert_allclose(y, np.exp(x) / np.exp(x).sum(axis=1, keepdims=True), rtol=1e-12)
    assert remote.forward_each([]) == []


def _target(tmp_path: Path, body: str) -> str:
    path = tmp_path / "target.py"
    path.write_text("import time\nimport numpy as np\n\n\ndef forward(x):\n" + body)
    return f"{path}:forward"


def test_forward_each_stops_at_the_first_failing_call(tmp_path: Path) -> None:
    body = (
        "    if x.shape[1] > 3:\n        raise ValueError('too wide')\n"
        "    return np.exp(x) / np.exp(x).sum(axis=1, keepdims=True)\n"
    )
    impl = RemoteImplementation(TargetSpec(_target(tmp_path, body), None))
    impl.load()
    try:
        with pytest.raises(ImplementationError, match="too wide") as raised:
            impl.forward_each([np.zeros((1, 2)), np.zeros((1, 5)), np.zeros((1, 1))])
        assert raised.value.role == "forward"
    finally:
        impl.close()


def test_forward_each_gives_every_call_its_own_time_limit(tmp_path: Path) -> None:
    # Nine calls of 0.5 s under a 1 s limit: 4.5 s in all, past one call's limit plus the
    # grace (4 s), and each call well inside its own.
    body = "    time.sleep(0.5)\n    return np.full_like(x, 1.0 / x.shape[1])\n"
    impl = RemoteImplementation(TargetSpec(_target(tmp_path, body), None, Options(timeout=1.0)))
    impl.load()
    try:
        assert len(impl.forward_each([np.zeros((1, 4))] * 9)) == 9
    finally:
        impl.close()


@pytest.mark.parametrize("remote", [(f"{BAD}:global_max_forward", None)], indirect=True)
def test_row_independence_is_judged_through_the_child(remote: RemoteImplementation) -> None:
    result = run_invariant("row_independence", remote, "float64")
    assert result.status == "failed"
