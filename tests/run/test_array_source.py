"""Counterexamples are printed as Python source that rebuilds them bit for bit: in full when
small, by their structure (a constant with a few entries set, a repeated row, column or
block) when large, and by shape and dtype only when they have none."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from conftest import require
from numpy.typing import NDArray

from softmax_verify.core.dtypes import named_dtype
from softmax_verify.core.result import Result
from softmax_verify.run._array_source import FULL_PRINT, array_source
from softmax_verify.run.text import failure_text

DTYPES = ["float64", "float32", "float16", "bfloat16"]


def _dtype(name: str) -> np.dtype[Any]:
    if name == "bfloat16":
        require("ml_dtypes")
    return np.dtype(named_dtype(name))


def rebuilt(lines: list[str], name: str) -> NDArray[Any]:
    """Run the printed source, as a user pasting it would, and return what it binds."""
    namespace: dict[str, Any] = {"np": np}
    if any("ml_dtypes" in line for line in lines):
        import ml_dtypes

        namespace["ml_dtypes"] = ml_dtypes
    exec("\n".join(line.strip() for line in lines), namespace)  # the printed text is source
    value: NDArray[Any] = namespace[name]
    return value


def same_bits(a: NDArray[Any], b: NDArray[Any]) -> bool:
    bits = np.dtype(f"u{a.dtype.itemsize}")
    return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a.view(bits), b.view(bits))


def _structured(dtype: np.dtype[Any]) -> dict[str, NDArray[Any]]:
    rng = np.random.default_rng(3)
    row = rng.normal(size=(1, 40)).astype(dtype)
    sparse = np.zeros((2, 4096), dtype=dtype)
    sparse[1, [0, 17, 4095]] = np.array([1.5, -np.inf, -0.0]).astype(dtype)
    return {
        "constant": np.full((1, 8192), 0.1, dtype=dtype),
        "negative_zero": np.full((3, 100), -0.0, dtype=dtype),
        "sparse": sparse,
        "repeated_row": np.tile(row, (300, 1)),
        "per_row_constant": np.repeat(np.array([[1.0], [-2.5], [1e-3]]).astype(dtype), 999, 1),
        "repeated_block": np.tile(rng.normal(size=(2, 8)).astype(dtype), (1, 512)),
        "small": rng.normal(size=(4, 16)).astype(dtype),
        "small_special": np.array([[np.nan, np.inf, -np.inf, -0.0, 3e-8]]).astype(dtype),
    }


@pytest.mark.parametrize("dtype_name", DTYPES)
def test_the_printed_source_rebuilds_the_array_bitwise(dtype_name: str) -> None:
    dtype = _dtype(dtype_name)
    for label, value in _structured(dtype).items():
        lines = array_source("x", value)
        assert lines is not None, label
        back = rebuilt(lines, "x")
        if label == "small_special":  # NaN is written as np.nan: compare it as NaN
            assert np.isnan(back[0, 0].astype(np.float64))
            value, back = value[:, 1:], back[:, 1:]
        assert same_bits(back, value), (label, lines)


def test_a_constant_array_prints_as_np_full() -> None:
    lines = array_source("dout", np.full((1, 256), 1.0, dtype=np.float16))
    assert lines == ["dout = np.full((1, 256), 1.0, dtype=np.float16)"]


@pytest.mark.parametrize("dtype_name", DTYPES)
def test_random_small_arrays_round_trip(dtype_name: str) -> None:
    dtype = _dtype(dtype_name)
    rng = np.random.default_rng(11)
    for scale in (1e-6, 1.0, 1e3, 1e30):
        with np.errstate(over="ignore"):  # beyond float16's range: inf, printed as np.inf
            value = (rng.standard_normal((3, 7)) * scale).astype(dtype)
        lines = array_source("x", value)
        assert lines is not None
        assert same_bits(rebuilt(lines, "x"), value)


def test_labels_print_as_integers_and_round_trip() -> None:
    small = np.array([0, 3, 1], dtype=np.int64)
    assert array_source("labels", small) == ["labels = np.array([0, 3, 1], dtype=np.int64)"]
    onehot = np.zeros((2, 300), dtype=np.int32)
    onehot[[0, 1], [4, 7]] = 1
    lines = array_source("labels", onehot)
    assert lines is not None
    assert lines[0] == "labels = np.full((2, 300), 0, dtype=np.int32)"
    assert same_bits(rebuilt(lines, "labels"), onehot)
    mask = np.array([[True, False]])
    assert array_source("mask", mask) == ["mask = np.array([[ True, False]], dtype=np.bool_)"]


def test_an_unstructured_large_array_says_so() -> None:
    value = np.random.default_rng(0).normal(size=(8, FULL_PRINT))
    assert array_source("x", value) is None
    result = Result(
        "matches_reference", "float64", "failed", 1, 0.0, "wrong", counterexample={"x": value}
    )
    text = failure_text(result)
    assert "x: array of shape (8, 64), dtype float64" in text


def test_a_report_prints_a_large_constant_counterexample_as_source() -> None:
    x = np.zeros((1, 256), dtype=np.float16)
    result = Result(
        "ones_upstream_gives_zero",
        "float16",
        "failed",
        1,
        0.0,
        "wrong",
        counterexample={"x": x, "dout": np.full((1, 256), 1.0, dtype=np.float16)},
    )
    block = failure_text(result).split("minimal counterexample:\n")[1].splitlines()
    assert block == [
        "  x = np.full((1, 256), 0.0, dtype=np.float16)",
        "  dout = np.full((1, 256), 1.0, dtype=np.float16)",
    ]
    assert same_bits(rebuilt(block[:1], "x"), x)
