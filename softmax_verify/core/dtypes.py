"""The floating dtypes softmax-verify checks, and their machine constants.

float32 and float64 come with numpy; float16 too; bfloat16 comes from the optional
``ml_dtypes`` package (``pip install softmax-verify[half]``). numpy's ``finfo`` does
not know bfloat16, so every machine constant is read through ``finfo`` here.
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
from numpy.typing import DTypeLike

from softmax_verify.core.extras import install_hint

__all__ = [
    "DTYPE_NAMES",
    "HALF_NAMES",
    "bfloat16",
    "finfo",
    "is_float_dtype",
    "is_half",
    "named_dtype",
]

#: Every dtype name the checks accept, widest first.
DTYPE_NAMES: tuple[str, ...] = ("float64", "float32", "float16", "bfloat16")
#: The half-precision ones: their tolerances follow an accumulation model (tolerances/).
HALF_NAMES: tuple[str, ...] = ("float16", "bfloat16")


def bfloat16() -> np.dtype[Any] | None:
    """bfloat16 from ``ml_dtypes``, or None when that optional package is not installed."""
    try:
        import ml_dtypes
    except ImportError:
        return None
    found: np.dtype[Any] = np.dtype(ml_dtypes.bfloat16)
    return found


def named_dtype(name: str, parameter: str = "dtype") -> np.dtype[Any]:
    """The dtype called ``name`` (one of ``DTYPE_NAMES``); TypeError naming ``parameter``."""
    if name == "bfloat16":
        found = bfloat16()
        if found is None:
            raise TypeError(
                f"{parameter}='bfloat16' needs the ml_dtypes package: {install_hint('ml_dtypes')}"
            )
        return found
    if name not in DTYPE_NAMES:
        raise TypeError(f"{parameter} must be one of {', '.join(DTYPE_NAMES)}, got {name!r}")
    return np.dtype(name)


def is_half(dtype: DTypeLike) -> bool:
    """True for float16 and bfloat16."""
    return np.dtype(dtype).name in HALF_NAMES


def is_float_dtype(dtype: np.dtype[Any]) -> bool:
    """True for numpy's floating dtypes and for bfloat16 (whose numpy kind is 'V')."""
    return dtype.kind == "f" or dtype.name == "bfloat16"


#: finfo by the dtype-like it was asked for: the checks ask several times per example,
#: and numpy's own lookup (with ``np.dtype`` and ``.name`` first) costs microseconds.
_FINFO: dict[object, Any] = {}


def finfo(dtype: DTypeLike) -> Any:
    """``np.finfo(dtype)``, or ``ml_dtypes.finfo`` for bfloat16 (same attributes)."""
    try:
        return _FINFO[dtype]
    except (KeyError, TypeError):  # TypeError: a dtype-like that cannot be hashed
        pass
    resolved = np.dtype(dtype)
    if resolved.name == "bfloat16":
        import ml_dtypes

        found = ml_dtypes.finfo(resolved)
    else:
        found = np.finfo(resolved)
    with contextlib.suppress(TypeError):
        _FINFO[dtype] = found
    return found
