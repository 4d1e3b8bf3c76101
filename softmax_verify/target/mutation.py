"""Whether the code under test wrote to an array it was given or kept: snapshots and bits.

Writing into an array seen before a call (an input, the arrays a forward stored for its
backward) is mutation; binding new arrays to names (a layer's ``self.dinputs = ...``, a
dict's new key) is the code keeping state, and is not.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import FunctionType, MethodType, ModuleType
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["Snapshot", "arrays", "same_bits", "snapshot", "unchanged"]

Snapshot = list[tuple[NDArray[Any], NDArray[Any]]]


def arrays(obj: object, depth: int = 3) -> list[NDArray[Any]]:
    """The arrays inside ``obj`` (an array, a mapping, a sequence, a named tuple or an
    object's attributes), looking ``depth`` containers deep, each array once."""
    found: dict[int, NDArray[Any]] = {}
    _collect(obj, depth, found)
    return list(found.values())


def _collect(obj: object, depth: int, found: dict[int, NDArray[Any]]) -> None:
    if isinstance(obj, np.ndarray):
        found.setdefault(id(obj), obj)
        return
    if depth == 0 or isinstance(obj, (str, bytes, type, ModuleType, FunctionType, MethodType)):
        return
    values: list[object]
    if isinstance(obj, Mapping):
        values = list(obj.values())
    elif isinstance(obj, (tuple, list)):
        values = list(obj)
    else:
        values = list(getattr(obj, "__dict__", {}).values())
    for value in values:
        _collect(value, depth - 1, found)


def snapshot(obj: object) -> Snapshot:
    """Each array inside ``obj`` with a copy of it, to see later whether it was written to."""
    return [(array, array.copy()) for array in arrays(obj)]


def same_bits(a: NDArray[Any], b: NDArray[Any]) -> bool:
    """True when both arrays hold the same bits: stricter than ``==`` (tells -0.0 from 0.0
    and NaN payloads apart) and one pass without the masked copies ``equal_nan`` makes."""
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.dtype.kind != "f" or a.dtype.itemsize not in (2, 4, 8):
        return bool(np.array_equal(a, b))
    as_int = np.dtype(f"u{a.dtype.itemsize}")
    return bool(np.array_equal(a.view(as_int), b.view(as_int)))


def unchanged(before: Snapshot) -> bool:
    """Whether every array seen before the call still holds its bits (compared in place)."""
    return all(same_bits(array, copy) for array, copy in before)
