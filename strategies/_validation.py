"""Argument checks shared by the strategy modules.

Every public strategy function validates its arguments eagerly, before it
builds a strategy, so a mistake surfaces at the call site (typically while a
test module is being imported) rather than on the first draw.

Conventions, following ``hypothesis.extra.numpy``:

* an argument of the wrong *type* raises ``TypeError``;
* an argument of the right type but an unusable *value* raises
  ``hypothesis.errors.InvalidArgument``.

Either way the message starts with ``name=value`` so the offending argument
can be found at a glance.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from hypothesis.errors import InvalidArgument
from numpy.typing import DTypeLike

from softmax_verify.core.dtypes import bfloat16, finfo

__all__ = [
    "DTYPES",
    "HALF_DTYPES",
    "check_dtype",
    "check_int",
    "check_magnitude",
    "check_shape",
    "largest_at_most",
]

DTYPES: tuple[np.dtype[np.floating[Any]], ...] = (np.dtype(np.float32), np.dtype(np.float64))
#: Half precision: float16, and bfloat16 when the optional ml_dtypes package is installed.
HALF_DTYPES: tuple[np.dtype[Any], ...] = (
    np.dtype(np.float16),
    *((found,) if (found := bfloat16()) is not None else ()),
)
_EXPECTED = "float32, float64, float16 or bfloat16"


def check_dtype(dtype: DTypeLike, name: str = "dtype") -> np.dtype[np.floating[Any]]:
    """Return ``dtype`` as a numpy dtype if it is in ``DTYPES`` or ``HALF_DTYPES``.

    Else TypeError. ``None`` is rejected even though numpy reads it as float64:
    passing ``None`` here is far more likely a forgotten argument than a request
    for float64. ``"bfloat16"`` needs ml_dtypes.
    """
    if dtype is None:
        raise TypeError(f"{name}=None must be {_EXPECTED}")
    try:
        named = bfloat16() if isinstance(dtype, str) and dtype == "bfloat16" else None
        resolved = named if named is not None else np.dtype(dtype)
    except (TypeError, ValueError):
        raise TypeError(f"{name}={dtype!r} must be {_EXPECTED}") from None
    supported: np.dtype[np.floating[Any]]
    for supported in DTYPES + HALF_DTYPES:
        if resolved == supported:
            return supported
    raise TypeError(f"{name}={dtype!r} must be {_EXPECTED}, got dtype {resolved.str}")


def check_int(value: object, name: str, *, min_value: int) -> int:
    """Return ``value`` as an int if it is an integer (not a bool) >= ``min_value``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name}={value!r} must be an int, got {type(value).__name__}")
    result = int(value)
    if result < min_value:
        raise InvalidArgument(f"{name}={result} must be at least {min_value}")
    return result


def check_magnitude(value: object, name: str) -> float:
    """Return ``value`` as a float if it is a positive, finite real number."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(
        value, (int, float, np.integer, np.floating)
    ):
        raise TypeError(f"{name}={value!r} must be a real number, got {type(value).__name__}")
    result = float(value)
    if not (math.isfinite(result) and result > 0.0):
        raise InvalidArgument(f"{name}={value!r} must be a positive finite number")
    return result


def check_shape(shape: object, name: str = "shape") -> tuple[int, int]:
    """Return ``shape`` if it is a tuple of two positive ints (rows, columns)."""
    if not isinstance(shape, tuple):
        raise TypeError(
            f"{name}={shape!r} must be a tuple (n_rows, n_cols), got {type(shape).__name__}"
        )
    if len(shape) != 2:
        raise InvalidArgument(f"{name}={shape!r} must have exactly two dimensions (n_rows, n_cols)")
    rows = check_int(shape[0], f"{name}[0]", min_value=1)
    cols = check_int(shape[1], f"{name}[1]", min_value=1)
    return (rows, cols)


def largest_at_most(value: float, dtype: np.dtype[np.floating[Any]], name: str) -> float:
    """Return the largest finite ``dtype`` value that is ``<= value`` (``value > 0``).

    Generated entries are clipped to this bound *before* the cast to ``dtype``,
    so the cast can neither overflow nor round an entry past ``value``: the
    guarantee ``|x| <= value`` then holds whether it is checked in ``dtype`` or
    in float64. Raises InvalidArgument when ``value`` is below the smallest
    positive ``dtype`` value, since every entry would then have to be zero.
    """
    info = finfo(dtype)
    clamped = min(value, float(info.max))
    bound = dtype.type(clamped)
    if float(bound) > clamped:
        bound = np.nextafter(bound, dtype.type(0))
    if not float(bound) > 0.0:
        raise InvalidArgument(
            f"{name}={value!r} is smaller than the smallest positive {dtype} value "
            f"({float(info.smallest_subnormal)!r})"
        )
    return float(bound)
