"""The child's channel: nothing the target does in its process changes what the verifier
reads.

``isolation.child.transport`` is bound before the target is imported: a target that
patches numpy, pickle, struct, os, io, math, builtins or this package's own module
globals (tests/hostile/echo_patching.py, one patch per run) still has the verifier see
exactly what each call returned, and every write it made to its inputs.
"""

from __future__ import annotations

import runpy
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from test_hostile import HOSTILE, check, only

from softmax_verify.core.options import Options
from softmax_verify.isolation.remote import RemoteImplementation
from softmax_verify.target.load import TargetSpec

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux pidfds")

ECHO = str(HOSTILE / "echo_patching.py")
PATCHES = list(runpy.run_path(ECHO)["PATCHES"])


@pytest.fixture
def echo(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[RemoteImplementation]:
    """The echo target in a child, patching ``request.param`` at import."""
    monkeypatch.setenv("SOFTMAX_VERIFY_TEST_PATCH", request.param)
    impl = RemoteImplementation(TargetSpec(ECHO, f"{ECHO}:backward", Options(timeout=10.0)))
    impl.load()
    yield impl
    impl.close()


@pytest.mark.parametrize("echo", PATCHES, indirect=True)
def test_a_patch_in_the_target_cannot_change_what_the_verifier_reads(
    echo: RemoteImplementation,
) -> None:
    rng = np.random.default_rng(0)
    for dtype in (np.float64, np.float32):
        x = rng.standard_normal((3, 40)).astype(dtype)
        dout = rng.standard_normal((3, 40)).astype(dtype)
        call = echo.forward(x)
        assert call.y.dtype == x.dtype
        assert call.y.tobytes() == x.tobytes()  # what the forward returned: its input
        assert call.mutated_input is True  # and it wrote to its input
        back = echo.backward(dout, call.cache)
        assert back.dx.tobytes() == dout.tobytes()
        assert back.mutated_dout is True
        assert back.mutated_cache is True


def test_a_wrong_forward_that_patches_numpy_fails(tmp_path: Path) -> None:
    """Uniform rows, swapped for the right ones by a patched ``np.ascontiguousarray``
    wherever something makes them contiguous: the verdict is the uniform rows'."""
    argv = (*only("matches_reference"), "--dtype", "float64", "--max-examples", "10")
    run = check(tmp_path, "cheats_by_patching.py", *argv)
    assert run.code == 1
    assert run.result("matches_reference")["status"] == "failed"
