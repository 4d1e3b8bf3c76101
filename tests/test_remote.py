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

import numpy as np
import pytest

from softmax_verify._remote import RemoteCache, RemoteImplementation
from softmax_verify._wire import WireError, decode_array, encode_array, loads_untrusted
from softmax_verify.implementation import lookup
from softmax_verify.runner import run_invariant
from softmax_verify.targets import TargetSpec

TESTS = Path(__file__).resolve().parent
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
