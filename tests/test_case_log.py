"""Tests of ``softmax_verify._case_log``: the case a crashed child was checking.

* A case reads back bit for bit: NaN payloads, infinities, signed zeros, float32,
  a non-contiguous view, a 0-d array.
* Each write replaces the last, ``clear`` leaves no case, and a case over ``MAX_BYTES``
  is not kept.
* A record cut short (a crash in the middle of a write) or garbage reads as None,
  never raises.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from softmax_verify import _case_log
from softmax_verify._case_log import CaseLog, read_case


@pytest.fixture
def log_path(tmp_path: Path) -> str:
    path = tmp_path / "case"
    path.write_bytes(b"")
    return str(path)


def _same(a: dict[str, NDArray[Any]], b: dict[str, NDArray[Any]] | None) -> None:
    assert b is not None
    assert list(a) == list(b)
    for name in a:
        assert b[name].dtype == a[name].dtype, name
        assert b[name].shape == a[name].shape, name
        assert b[name].tobytes() == np.ascontiguousarray(a[name]).tobytes(), name


def test_a_case_reads_back_bit_for_bit(log_path: str) -> None:
    x = np.array([[np.nan, np.inf, -np.inf, -0.0], [1e-310, 5.0, -3.5, 0.0]])
    x[0, 0] = np.frombuffer(np.uint64(0x7FF8_0000_DEAD_BEEF).tobytes(), np.float64)[0]
    case = {
        "x": x,
        "dout": np.arange(12, dtype=np.float32).reshape(3, 4)[:, ::2],  # not contiguous
        "c": np.array(2.5),
    }
    log = CaseLog(log_path)
    log.write(case)
    _same(case, read_case(log_path))
    log.close()


def test_each_write_replaces_the_last_and_clear_leaves_none(log_path: str) -> None:
    log = CaseLog(log_path)
    log.write({"x": np.ones((50, 50))})
    second = {"x": np.full((2, 3), 7.0, dtype=np.float32)}
    log.write(second)  # shorter than the first: what is left of the first must not count
    _same(second, read_case(log_path))
    log.clear()
    assert read_case(log_path) is None
    log.close()


def test_a_case_too_large_is_not_kept(log_path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_case_log, "MAX_BYTES", 1000)
    log = CaseLog(log_path)
    log.write({"x": np.ones((2, 2))})
    log.write({"x": np.ones((20, 20))})  # 3200 bytes
    assert read_case(log_path) is None
    log.close()


@pytest.mark.parametrize("cut", [1, 8, 20, 40, -1])
def test_a_record_cut_short_is_no_case(log_path: str, cut: int) -> None:
    log = CaseLog(log_path)
    log.write({"x": np.ones((4, 4))})
    log.close()
    raw = Path(log_path).read_bytes()
    Path(log_path).write_bytes(raw[:cut])
    assert read_case(log_path) is None


def test_garbage_and_a_missing_file_are_no_case(log_path: str, tmp_path: Path) -> None:
    Path(log_path).write_bytes(b"\x10" + b"\x00" * 7 + b"\x04" + b"\x00" * 7 + b"nope" + b"????")
    assert read_case(log_path) is None
    assert read_case(str(tmp_path / "missing")) is None
