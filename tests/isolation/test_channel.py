"""The child's channel: nothing the target does in its process changes what the verifier
reads, and no reply, however malformed, hangs the verifier.

- ``isolation.child.transport`` is bound before the target is imported: a target that
  patches numpy, pickle, struct, os, io, math, builtins or this package's own module
  globals (tests/hostile/echo_patching.py, one patch per run) still has the verifier see
  exactly what each call returned, and every write it made to its inputs.
- ``isolation.frames`` reads every reply under the call's deadline: half a frame, a
  frame of 1 TiB or of negative length is an error of that call, with the reason, within
  the call's time limit.
"""

from __future__ import annotations

import json
import os
import runpy
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import cli
from test_hostile import HOSTILE, check, here, only

from softmax_verify.core.options import Options
from softmax_verify.isolation.frames import (
    ChannelClosed,
    FrameError,
    FrameTimeout,
    FrameTooLarge,
    read_frame,
    write_frame,
)
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


CONVERSION = "cheats_through_conversion.py"


@pytest.mark.parametrize("patch", list(runpy.run_path(str(HOSTILE / CONVERSION))["PATCHES"]))
def test_a_patched_numpy_cannot_forge_a_framework_arrays_conversion(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, patch: str
) -> None:
    """Uniform rows returned as another library's array, read by ``numpy.asarray``,
    ``numpy.from_dlpack`` or ``.numpy()`` and copied by ``numpy.array``: a target that
    patches the one its output goes through, to give the right rows instead, still fails
    (``target.arrays`` binds them before the target is imported)."""
    monkeypatch.setenv("SOFTMAX_VERIFY_TEST_PATCH", patch)
    argv = (*only("matches_reference"), "--dtype", "float64", "--max-examples", "10")
    run = check(tmp_path, CONVERSION, *argv)
    assert run.code == 1, run.err
    assert run.result("matches_reference")["status"] == "failed"


# --- frames --------------------------------------------------------------------------------


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    ours, theirs = socket.socketpair()
    yield ours, theirs
    ours.close()
    theirs.close()


def test_frames_interoperate_with_connection(pair: tuple[socket.socket, socket.socket]) -> None:
    """The child writes ``Connection``'s framing: the verifier reads it, both ways."""
    from multiprocessing.connection import Connection

    ours, theirs = pair
    peer = Connection(os.dup(theirs.fileno()))
    try:
        for size in (0, 1, 16384, 16385, 3 << 20):
            body = os.urandom(size)
            sender = threading.Thread(target=peer.send_bytes, args=(body,))
            sender.start()
            assert read_frame(ours, max_size=size, deadline=time.monotonic() + 60) == body
            sender.join()
            sender = threading.Thread(
                target=write_frame, args=(ours, body), kwargs={"deadline": time.monotonic() + 60}
            )
            sender.start()
            assert peer.recv_bytes() == body
            sender.join()
    finally:
        peer.close()


@pytest.mark.parametrize(
    ("sent", "error", "message"),
    [
        (b"", ChannelClosed, "closed the channel"),
        (b"\0\0", FrameError, "2 of 4 bytes"),
        (struct.pack("!i", 16) + b"abc", FrameError, "3 of 16 bytes"),
        (struct.pack("!i", -5), FrameError, "negative length"),
        (struct.pack("!i", -1) + struct.pack("!Q", 1 << 40), FrameTooLarge, "1099511627776"),
    ],
    ids=["nothing", "half a header", "half a body", "negative", "1 TiB"],
)
def test_a_malformed_frame_is_an_error_with_the_reason(
    pair: tuple[socket.socket, socket.socket], sent: bytes, error: type, message: str
) -> None:
    ours, theirs = pair
    theirs.sendall(sent)
    theirs.close()
    with pytest.raises(error, match=message):
        read_frame(ours, max_size=1 << 20, deadline=time.monotonic() + 10)


def test_a_frame_cut_short_is_an_error_at_the_deadline(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    ours, theirs = pair
    theirs.sendall(struct.pack("!i", 1 << 20) + b"abc")  # and nothing more; still open
    start = time.monotonic()
    with pytest.raises(FrameTimeout, match=r"cut short: 3 of 1048576 bytes within"):
        read_frame(ours, max_size=1 << 20, deadline=start + 0.5)
    assert 0.5 <= time.monotonic() - start < 5  # a hang guard, not a speed test


def test_a_frame_cut_short_by_death_is_seen_at_once(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    """The peer dies mid-frame while another process holds the socket open: no EOF ever
    comes, its pidfd says it is gone."""
    ours, theirs = pair
    holder = subprocess.Popen(["sleep", "60"], pass_fds=(theirs.fileno(),))
    writer = subprocess.Popen(
        [sys.executable, "-c", "import os, sys; os.write(int(sys.argv[1]), b'\\0\\0\\1\\0ab')",
         str(theirs.fileno())],
        pass_fds=(theirs.fileno(),),
    )  # fmt: skip
    pidfd = os.pidfd_open(writer.pid)
    try:
        start = time.monotonic()
        with pytest.raises(FrameError, match="the child died after 2 of 256 bytes"):
            read_frame(ours, max_size=1 << 20, deadline=start + 60, died=pidfd)
        assert time.monotonic() - start < 30  # not the deadline
    finally:
        os.close(pidfd)
        writer.wait()
        holder.kill()
        holder.wait()


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        ("half", "the reply was cut short: 3 of 1048576 bytes within the call's"),
        ("huge", "a reply of 1099511627776 bytes was announced; at most"),
        ("negative", "a reply of negative length (-5) was announced"),
    ],
)
def test_a_malformed_reply_is_an_error_of_the_call_within_its_deadline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, frame: str, reason: str
) -> None:
    monkeypatch.setenv("SOFTMAX_VERIFY_TEST_FRAME", frame)
    argv = (*only("rows_sum_to_one"), "--dtype", "float64", "--timeout", "1", "--jobs", "1")
    run = check(tmp_path, "half_frame.py", *argv)
    assert run.code == 1
    result = run.result("rows_sum_to_one")
    assert result["status"] == "error"
    assert result["message"].startswith("forward corrupted the verifier's channel (")
    assert reason in result["message"]
    if frame == "half":  # stopped as a hang: where it was stuck, and the case not shrunk
        assert result["location"] == f"{here('half_frame.py')} in forward"
        assert result["minimal"] is False
    # The call's limit is 1 s + the grace: the whole run well inside a minute.
    assert run.seconds < 60


@pytest.mark.parametrize("seconds", ["inf", "3e6"])
def test_a_time_limit_beyond_polls_range_is_not_a_traceback(
    capsys: pytest.CaptureFixture[str], seconds: str
) -> None:
    """``--timeout inf`` is no limit; 3e6 s is more milliseconds than ``poll`` takes (a C
    int): the waits are cut into polls of a bounded length, so neither overflows."""
    argv = ("check", *only("rows_sum_to_one"), "--dtype", "float64", "--max-examples", "5")
    code, out, err = cli(capsys, *argv, "--timeout", seconds, "--format", "json")
    assert "Traceback" not in err
    assert "OverflowError" not in err
    assert code == 0
    assert json.loads(out)["passed"] is True
