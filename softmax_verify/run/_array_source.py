"""An array as Python source that rebuilds it bit for bit: how a counterexample is printed.

Small arrays are written out in full (``np.array([...], dtype=...)``). A large one is
written in the first of these forms that needs at most ``FULL_PRINT`` literal entries:

- its most common value with the entries that differ (``np.full(shape, c, dtype=...)``,
  then ``x[rows, cols] = np.array([...])``): a constant array, or a shrunk counterexample
  of zeros with a few entries set;
- one row repeated (``np.tile(x, (N, 1))``), one column repeated (``np.tile(x, (1, D))``),
  or a block of p columns repeated along the row (``np.tile(x, (1, D // p))``), the
  repeated part written by these same rules.

Integer and boolean entries (class labels) are written as numpy prints them. Every float
entry is written as the shortest decimal that converts back to the same value of its
dtype (numpy's printing for its own dtypes; else checked here, falling back to the exact
float64 value, which always converts back); NaN and the infinities as
``np.nan`` and ``np.inf`` with their signs. Equality is bitwise throughout (``-0.0`` is
not ``0.0``), so the source rebuilds the array exactly, except NaN payloads (any NaN is
written as ``np.nan``). None when no form fits: the array has no such structure.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["FULL_PRINT", "array_source"]

#: Arrays up to this many entries are printed in full; structured forms use at most as many.
FULL_PRINT = 64

Array = np.ndarray[Any, Any]


def dtype_source(dtype: np.dtype[Any]) -> str:
    """The dtype as Python source: bfloat16 is not numpy's but ml_dtypes'; ``np.bool_`` is
    the boolean's name in every numpy (``np.bool`` only from numpy 2)."""
    if dtype.kind == "b":
        return "np.bool_"
    return "ml_dtypes.bfloat16" if dtype.name == "bfloat16" else f"np.{dtype}"


def _same_bits(a: Any, b: Any) -> bool:
    left = np.asarray(a)
    return bool(np.array_equal(left.view(_bits(left.dtype)), np.asarray(b).view(_bits(left.dtype))))


def _bits(dtype: np.dtype[Any]) -> np.dtype[Any]:
    return np.dtype(f"u{dtype.itemsize}")


def scalar_source(value: Any, dtype: np.dtype[Any]) -> str:
    """One entry as the shortest decimal that converts back to it in ``dtype``."""
    if dtype.kind in "biu":
        return repr(np.asarray(value, dtype=dtype).item())
    as_float = float(value)
    if math.isnan(as_float):
        negative = bool(np.signbit(np.asarray(value, dtype=dtype).astype(np.float32)))
        return "-np.nan" if negative else "np.nan"
    if math.isinf(as_float):
        return "np.inf" if as_float > 0 else "-np.inf"
    for text in (str(value), repr(as_float)):
        if not any(mark in text for mark in ".eE"):
            text += ".0"  # "-0" is the integer 0 in source: a float literal keeps the sign
        try:
            back = np.asarray(float(text)).astype(dtype)
        except ValueError:
            continue
        if _same_bits(back, np.asarray(value, dtype=dtype)):
            return text
    return repr(as_float)  # pragma: no cover - the float64 repr of a float value is exact


def _literal(value: Array) -> str:
    """``np.array([...], dtype=...)``: numpy's own printing of finite values of its dtypes (the
    shortest digits that round-trip, Dragon4), else every entry by ``scalar_source``."""
    if value.dtype.kind in "biu":  # labels: numpy prints integers and booleans exactly
        text = np.array2string(value, separator=", ", max_line_width=100, threshold=FULL_PRINT + 1)
        return f"np.array({text}, dtype={dtype_source(value.dtype)})"
    native = value.dtype.name in ("float64", "float32", "float16")
    if native and bool(np.isfinite(value).all()):
        # floatmode "unique": the shortest digits that round-trip, however small the value
        # (a fixed count of decimals, precision=17, cut 0.024259565076664623 short).
        text = np.array2string(value, separator=", ", max_line_width=100, floatmode="unique")
    else:
        text = np.array2string(
            value,
            separator=", ",
            max_line_width=100,
            threshold=FULL_PRINT + 1,
            formatter={"all": lambda v: scalar_source(v, value.dtype)},
        )
    return f"np.array({text}, dtype={dtype_source(value.dtype)})"


def _sparse(name: str, value: Array) -> list[str] | None:
    """``np.full`` of the most common value, then the entries that differ (at most FULL_PRINT)."""
    bits = value.view(_bits(value.dtype)).reshape(-1)
    patterns, counts = np.unique(bits, return_counts=True)
    common = patterns[int(np.argmax(counts))]
    differ = np.flatnonzero(bits != common)
    if differ.size > FULL_PRINT:
        return None
    fill = scalar_source(value.reshape(-1)[int(np.argmax(bits == common))], value.dtype)
    lines = [f"{name} = np.full({value.shape}, {fill}, dtype={dtype_source(value.dtype)})"]
    if differ.size:
        where = np.unravel_index(differ, value.shape)
        index = ", ".join(str(axis.tolist()) for axis in where)
        lines.append(f"{name}[{index}] = {_literal(value.reshape(-1)[differ])}")
    return lines


def _tiled(name: str, value: Array) -> list[str] | None:
    """A repeated row, a repeated column, or a block of columns repeated along each row."""
    if value.ndim != 2:
        return None
    n, d = value.shape
    if n > 1 and _same_bits(value, np.broadcast_to(value[:1], value.shape)):
        inner = array_source(name, value[:1])
        return None if inner is None else [*inner, f"{name} = np.tile({name}, ({n}, 1))"]
    # Blocks of at most FULL_PRINT columns that divide D: a handful of candidates.
    for period in (p for p in range(1, min(d // 2, FULL_PRINT) + 1) if d % p == 0):
        block = value[:, :period]
        if _same_bits(value, np.tile(block, (1, d // period))):
            inner = array_source(name, np.ascontiguousarray(block))
            if inner is not None:
                return [*inner, f"{name} = np.tile({name}, (1, {d // period}))"]
            return None
    return None


def array_source(name: str, value: Array) -> list[str] | None:
    """Statements that bind ``name`` to an array bitwise equal to ``value`` (module docstring),
    or None when it is too large and has no structure to write it by."""
    if value.ndim == 0:
        return [f"{name} = {value.item()!r}"]
    if value.size <= FULL_PRINT:
        return [f"{name} = {_literal(value)}"]
    return _sparse(name, value) or _tiled(name, value)
