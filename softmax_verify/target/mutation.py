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

Snapshot = list[tuple[NDArray[Any], bytes]]

#: Bound when this module is imported, which in the child process is before the target
#: is: what watches an array for writes must not be a name the target can rebind
#: (``numpy.array_equal``, ``numpy.ndarray``). ``ndarray`` and its methods are immutable.
_NDARRAY = np.ndarray
_VIEW = np.ndarray.view
_TOBYTES = np.ndarray.tobytes


def arrays(obj: object, depth: int = 3) -> list[NDArray[Any]]:
    """The arrays inside ``obj`` (an array, a mapping, a sequence, a named tuple or an
    object's attributes), looking ``depth`` containers deep, each array once."""
    found: dict[int, NDArray[Any]] = {}
    _collect(obj, depth, found)
    return list(found.values())


def _collect(obj: object, depth: int, found: dict[int, NDArray[Any]]) -> None:
    if isinstance(obj, _NDARRAY):
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


def _bits(array: NDArray[Any]) -> bytes:
    """The array's memory as bytes, in C order, through ``ndarray``'s own methods (an
    ndarray subclass's overrides do not run); its dtype and shape are part of it."""
    plain = _VIEW(array, _NDARRAY)
    return b"%s|%r|" % (plain.dtype.str.encode(), plain.shape) + _TOBYTES(plain, "C")


def snapshot(obj: object) -> Snapshot:
    """Each array inside ``obj`` with its bits, to see later whether it was written to."""
    return [(array, _bits(array)) for array in arrays(obj)]


def same_bits(a: NDArray[Any], b: NDArray[Any]) -> bool:
    """True when both arrays hold the same bits: stricter than ``==`` (tells -0.0 from 0.0
    and NaN payloads apart), and through functions bound before the target was imported."""
    return _bits(a) == _bits(b)


def unchanged(before: Snapshot) -> bool:
    """Whether every array seen before the call still holds its bits (compared in place)."""
    return all(_bits(array) == bits for array, bits in before)
