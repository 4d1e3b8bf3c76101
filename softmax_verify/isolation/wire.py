"""Messages between the verifier and the child that runs the code under test.

The verifier (parent) trusts itself, not the child: the child runs arbitrary code, so
what it sends is read with an unpickler that constructs no object beyond builtins
(``find_class`` refuses every global), and arrays travel as ``("nd", dtype, shape,
bytes)`` tuples that the parent rebuilds itself, for the few dtypes it accepts. The
child trusts the parent and reads its messages with plain pickle.

Both directions use one socket pair through ``multiprocessing.connection.Connection``
(length-prefixed frames). Pickle protocol 5 sends large ``bytes`` without re-encoding.
"""

from __future__ import annotations

import io
import math
import pickle
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["WireError", "decode_array", "encode_array", "loads_untrusted", "same_array"]

#: Array kinds the parent rebuilds: booleans, integers, floats and complex numbers.
_KINDS = "biufc"


class WireError(ValueError):
    """A message from the child that is not one the protocol allows."""


class _NoGlobals(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        raise WireError(f"the child sent a pickled {module}.{name}; only builtins are accepted")


def loads_untrusted(data: bytes | bytearray) -> Any:
    """Unpickle ``data`` constructing builtins only (no class, no function, no reduce)."""
    try:
        return _NoGlobals(io.BytesIO(data)).load()
    except WireError:
        raise
    except Exception as exc:  # truncated or malformed frames: the stream is not ours
        raise WireError(f"unreadable message from the child ({type(exc).__name__})") from None


def encode_array(value: NDArray[Any]) -> tuple[str, str, tuple[int, ...], bytes]:
    """``value`` as builtins: its dtype (``str`` code, or name for extension dtypes such
    as bfloat16), shape and C-order bytes."""
    return (
        "nd",
        _code(value.dtype),
        tuple(int(n) for n in value.shape),
        np.ascontiguousarray(value).tobytes(),
    )


_DTYPES: dict[str, np.dtype[Any]] = {}


def _code(dtype: np.dtype[Any]) -> str:
    code: str = dtype.str if dtype.kind in _KINDS else dtype.name
    return code


def _dtype(code: object) -> np.dtype[Any]:
    if isinstance(code, str) and code in _DTYPES:
        return _DTYPES[code]
    if not isinstance(code, str):
        raise WireError(f"array dtype must be a string, got {type(code).__name__}")
    try:
        dtype = np.dtype(code)
    except TypeError:
        dtype = _extension_dtype(code)
    numeric = dtype.kind in _KINDS or _is_extension(dtype)
    if not numeric or dtype.hasobject or dtype.names is not None:
        raise WireError(f"array dtype {code!r} is not a numeric dtype")
    _DTYPES[code] = dtype
    return dtype


def _extension_dtype(name: str) -> np.dtype[Any]:
    """Numeric dtypes numpy does not name itself (ml_dtypes' bfloat16 and the like)."""
    try:
        import ml_dtypes
    except ImportError:
        raise WireError(f"unknown array dtype {name!r}") from None
    found = getattr(ml_dtypes, name, None)
    if found is None:
        raise WireError(f"unknown array dtype {name!r}")
    dtype: np.dtype[Any] = np.dtype(found)
    return dtype


def _is_extension(dtype: np.dtype[Any]) -> bool:
    return dtype.kind == "V" and dtype.names is None and dtype.itemsize in (1, 2)


def decode_array(value: object) -> NDArray[Any]:
    """The array ``encode_array`` encoded, in fresh memory of the parent's own."""
    if not (isinstance(value, tuple) and len(value) == 4 and value[0] == "nd"):
        raise WireError("expected an encoded array")
    _, code, shape, raw = value
    dtype = _dtype(code)
    if not (isinstance(shape, tuple) and all(type(n) is int and n >= 0 for n in shape)):
        raise WireError(f"array shape must be a tuple of sizes, got {shape!r}")
    if not isinstance(raw, bytes) or len(raw) != math.prod(shape) * dtype.itemsize:
        raise WireError("array bytes do not match the shape and dtype")
    array: NDArray[Any] = np.frombuffer(raw, dtype=dtype).reshape(shape).copy()
    return array


def same_array(encoded: object, value: NDArray[Any]) -> bool:
    """Whether ``encoded`` (from ``encode_array``) holds exactly ``value``: dtype, shape and
    every bit (so -0.0 differs from 0.0 and NaN payloads count), compared as bytes."""
    return (
        isinstance(encoded, tuple)
        and len(encoded) == 4
        and encoded[1] == _code(value.dtype)
        and encoded[2] == value.shape
        and encoded[3] == np.ascontiguousarray(value).tobytes()
    )
