"""Argument validation shared by the public functions.

Every public entry point validates first, so a caller sees a ``TypeError`` or
``ValueError`` that names the parameter and what was expected, never a numpy
broadcasting traceback.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import DTypeLike, NDArray

from softmax_verify.core.dtypes import DTYPE_NAMES, bfloat16, named_dtype

__all__ = [
    "CHECKED_DTYPES",
    "SUPPORTED_DTYPES",
    "as_float_array",
    "as_matrix",
    "check_axis",
    "check_same_shape",
    "resolve_dtype",
]

#: What the reference kernels and the staged helpers compute in.
SUPPORTED_DTYPES: tuple[np.dtype[Any], ...] = (np.dtype(np.float32), np.dtype(np.float64))
#: What implementations are checked at: those, and half precision (bfloat16 with ml_dtypes).
CHECKED_DTYPES: tuple[np.dtype[Any], ...] = (
    *SUPPORTED_DTYPES,
    np.dtype(np.float16),
    *((found,) if (found := bfloat16()) is not None else ()),
)
_EXPECTED = ", ".join(DTYPE_NAMES[:-1]) + " or " + DTYPE_NAMES[-1]


def _describe(value: object) -> str:
    if isinstance(value, np.ndarray):
        return f"array of dtype {value.dtype} and shape {value.shape}"
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__name__} {text}"


def resolve_dtype(dtype: DTypeLike, name: str = "dtype") -> np.dtype[Any]:
    """Return ``dtype`` as a numpy dtype if it is one of ``DTYPE_NAMES``, else raise TypeError.

    The name ``"bfloat16"`` resolves through ml_dtypes (an optional extra).
    """
    if dtype is None:
        raise TypeError(f"{name} must be {_EXPECTED}, got None")
    if isinstance(dtype, str) and dtype == "bfloat16":
        return named_dtype(dtype, name)
    try:
        resolved = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{name} must be {_EXPECTED}, got {_describe(dtype)}") from None
    if resolved not in CHECKED_DTYPES:
        raise TypeError(f"{name} must be {_EXPECTED}, got {resolved}")
    return resolved


def as_float_array(
    value: object, name: str, *, dtypes: tuple[np.dtype[Any], ...] = SUPPORTED_DTYPES
) -> NDArray[np.floating[Any]]:
    """Return ``value`` as a float32/float64 ndarray of rank >= 1, without copying.

    Lists of Python floats are accepted (they become float64). Integer, bool,
    complex, object, string and 0-d inputs are rejected: softmax of integers is
    almost always a caller's mistake, and silently casting would hide it. The gradient
    checks pass ``dtypes=CHECKED_DTYPES``: half-precision inputs too.
    """
    if isinstance(value, np.ndarray):
        array = value
    elif isinstance(value, (list, tuple)):
        try:
            array = np.asarray(value)
        except (ValueError, TypeError):
            raise TypeError(
                f"{name} must be a float32 or float64 array, got a ragged or "
                f"non-numeric {type(value).__name__}"
            ) from None
    else:
        raise TypeError(f"{name} must be a float32 or float64 numpy array, got {_describe(value)}")
    if array.dtype not in dtypes:
        kind = {"i": "integer", "u": "unsigned integer", "b": "bool", "c": "complex"}.get(
            array.dtype.kind, str(array.dtype)
        )
        allowed = ", ".join(d.name for d in dtypes[:-1]) + " or " + dtypes[-1].name
        raise TypeError(f"{name} must have dtype {allowed}, got {kind} ({array.dtype})")
    if array.ndim == 0:
        raise ValueError(f"{name} must have at least one dimension, got a 0-d array")
    return array


def as_matrix(
    value: object, name: str, *, dtypes: tuple[np.dtype[Any], ...] = SUPPORTED_DTYPES
) -> NDArray[np.floating[Any]]:
    """``as_float_array``, and a non-empty 2-D (N, D) array: rows of length D."""
    array = as_float_array(value, name, dtypes=dtypes)
    if array.ndim != 2 or 0 in array.shape:
        raise ValueError(f"{name} must be a non-empty 2-D (N, D) array, got shape {array.shape}")
    return array


def check_axis(axis: object, array: NDArray[Any], array_name: str) -> int:
    """Return ``axis`` normalized to ``0 <= axis < array.ndim``; the axis must be non-empty."""
    if isinstance(axis, (bool, np.bool_)):
        raise TypeError(f"axis must be an int, got bool {axis!r}")
    if not isinstance(axis, (int, np.integer)):
        raise TypeError(f"axis must be an int, got {_describe(axis)}")
    index = int(axis)
    ndim = array.ndim
    if not -ndim <= index < ndim:
        raise ValueError(
            f"axis={index} is out of range for {array_name} with {ndim} dimension"
            f"{'s' if ndim != 1 else ''} (expected {-ndim} <= axis < {ndim})"
        )
    index %= ndim
    if array.shape[index] == 0:
        raise ValueError(
            f"{array_name} has an empty reduction axis: shape {array.shape}, axis={index}; "
            "softmax over zero entries is undefined"
        )
    return index


def check_same_shape(
    first: NDArray[Any], first_name: str, second: NDArray[Any], second_name: str
) -> None:
    """Raise ValueError unless both arrays have the same shape, and TypeError on mixed dtypes."""
    if first.shape != second.shape:
        raise ValueError(
            f"{first_name} must have the same shape as {second_name}: "
            f"got {first_name}.shape={first.shape} and {second_name}.shape={second.shape}"
        )
    if first.dtype != second.dtype:
        raise TypeError(
            f"{first_name} must have the same dtype as {second_name}: "
            f"got {first_name}.dtype={first.dtype} and {second_name}.dtype={second.dtype}"
        )
