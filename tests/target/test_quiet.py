"""TensorFlow's import-time log lines are kept off stderr in the child; nothing else is."""

from __future__ import annotations

import os
import sys

import pytest

from softmax_verify.target import quiet

NOISE = [
    b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    b"I0000 00:00:1796591227.572174   23765 port.cc:153] oneDNN custom operations are on. You "
    b"may see slightly different numerical results due to floating-point round-off errors.",
    b"I0000 00:00:1796591227.682539   23765 cpu_feature_guard.cc:227] This TensorFlow binary "
    b"is optimized to use available CPU instructions in performance-critical operations.",
    b"To enable the following instructions: AVX2 AVX512F FMA, in other operations, rebuild "
    b"TensorFlow with the appropriate compiler flags.",
    b"W0000 00:00:1796591227.1   23765 some_file.cc:12] a warning line\n",
    b"E0000 00:00:1796603985.415212    1407 cuda_platform.cc:52] failed call to cuInit: "
    b"INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)",
]
KEPT = [
    b"E0000 00:00:1796591227.572174   23765 port.cc:153] an error line is kept",
    b"E0000 00:00:1796591227.572174   23765 cuda_platform.cc:52] another CUDA error is kept",
    b"hello from the user's module",
    b"/x.py:3: UserWarning: the user's warning",
    b"",
]


@pytest.mark.parametrize("line", NOISE)
def test_tensorflows_log_lines_are_noise(line: bytes) -> None:
    assert quiet.is_noise(line)


@pytest.mark.parametrize("line", KEPT)
def test_errors_and_the_users_lines_are_not(line: bytes) -> None:
    assert not quiet.is_noise(line)


def test_the_filter_passes_everything_but_the_noise_on_in_order(
    capfd: pytest.CaptureFixture[str],
) -> None:
    with quiet._stderr_filtered():
        for line in (KEPT[0], NOISE[0], KEPT[1], NOISE[1], KEPT[2]):
            os.write(2, line + b"\n")
    err = capfd.readouterr().err
    assert err.splitlines() == [KEPT[0].decode(), KEPT[1].decode(), KEPT[2].decode()]


def test_the_finder_wraps_only_the_quieted_modules(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "meta_path", list(sys.meta_path))
    quiet.quiet_imports()
    quiet.quiet_imports()  # once
    finders = [f for f in sys.meta_path if isinstance(f, quiet._QuietFinder)]
    assert len(finders) == 1
    assert finders[0].find_spec("json", None) is None  # left to the other finders
    monkeypatch.setattr(quiet, "QUIETED", ("json",))
    spec = finders[0].find_spec("json", None)
    assert spec is not None
    assert isinstance(spec.loader, quiet._QuietLoader)
    assert spec.loader.get_filename("json") == spec.origin  # delegated to the real loader
