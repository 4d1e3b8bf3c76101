"""The child's end of the channel, bound before the code under test is imported.

A target may rebind anything in its process: ``numpy.ascontiguousarray``,
``numpy.frombuffer``, ``pickle.dumps``, ``struct.pack``, ``os.write``, a module global of
this package, ``builtins.len``. An encoder that looked those names up when called would
send what the patch makes of a reply (a wrong output swapped for a right one, an input
written to passed off as untouched). ``Transport`` takes every function it uses when it
is made, first thing in the child, and reaches an array only through the methods and
attribute descriptors of ``numpy.ndarray`` and ``numpy.dtype`` themselves: those types
are immutable (their attributes cannot be set), and calling the base class's descriptor
ignores whatever an ndarray subclass overrides (its ``tobytes``, ``shape``, ``dtype``,
``__array__``, ``__buffer__``). The bytes are numpy's own C-order copy of the array's
memory (``ndarray.tobytes``), which any strides, Fortran order and bfloat16 give
exactly. What is sent is exact builtins, pickled by the C pickler (it consults no
``copyreg`` table or method of theirs for those) and framed as
``multiprocessing.connection.Connection`` frames them (``isolation.frames`` reads them).

This stops rebinding, careless or casual. It does not stop code set on deceiving the
verifier from inside this process: it can reach this object through the garbage
collector, patch this package's own modules, write frames on the socket itself, or poke
memory with ctypes (docs/cli.md, the threat model).
"""

from __future__ import annotations

import builtins
import os
import pickle
import struct
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["Encoded", "Transport"]

Encoded = tuple[str, str, tuple[int, ...], bytes]

#: Array kinds encoded by their ``dtype.str`` (others, e.g. bfloat16, by their name):
#: the parent's ``wire.decode_array`` reads both.
_KINDS = "biufc"


class Transport:
    """Encode arrays and send replies; read requests and decode their arrays. Every callable
    it uses is held from the moment it is made."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._type, self._isinstance = builtins.type, builtins.isinstance
        self._len, self._memoryview, self._bytearray = (
            builtins.len,
            builtins.memoryview,
            builtins.bytearray,
        )
        ndarray = np.ndarray
        self._ndarray = ndarray
        self._view: Callable[..., Any] = ndarray.view
        self._tobytes: Callable[..., bytes] = ndarray.tobytes
        self._reshape: Callable[..., Any] = ndarray.reshape
        self._copy: Callable[..., Any] = ndarray.copy
        self._get_dtype: Callable[[Any], np.dtype[Any]] = ndarray.__dict__["dtype"].__get__
        self._get_shape: Callable[[Any], tuple[int, ...]] = ndarray.__dict__["shape"].__get__
        dtype_attributes = np.dtype.__dict__
        self._dtype_kind: Callable[[Any], str] = dtype_attributes["kind"].__get__
        self._dtype_str: Callable[[Any], str] = dtype_attributes["str"].__get__
        self._dtype_name: Callable[[Any], str] = dtype_attributes["name"].__get__
        self._frombuffer: Callable[..., Any] = np.frombuffer
        self._dtypes: dict[str, np.dtype[Any]] = {}
        # The floating dtypes of every run, and the cross-entropy kind's int64 class indices.
        for name in ("float64", "float32", "float16", "int64"):
            self._know(np.dtype(name))
        self._dumps: Callable[..., bytes] = pickle.dumps
        self._loads: Callable[..., Any] = pickle.loads
        self._pack_short, self._pack_long = struct.Struct("!i").pack, struct.Struct("!Q").pack
        self._unpack_short = struct.Struct("!i").unpack
        self._unpack_long = struct.Struct("!Q").unpack
        self._write, self._readv = os.write, os.readv

    def _know(self, dtype: np.dtype[Any]) -> None:
        kind = self._dtype_kind(dtype)
        code = self._dtype_str(dtype) if kind in _KINDS else self._dtype_name(dtype)
        self._dtypes[code] = dtype

    def expect(self, dtypes: Iterable[np.dtype[Any]]) -> None:
        """Arrays of ``dtypes`` (bfloat16, say) may come: known from now on. Call it before
        the target is imported (the load request names the run's dtypes)."""
        for dtype in dtypes:
            self._know(dtype)

    # -- arrays --

    def encode(self, value: object) -> Encoded:
        """``("nd", dtype code, shape, C-order bytes)`` of an ndarray (or a subclass: its
        memory, seen as a plain ndarray, so that no method of the subclass runs)."""
        if self._type(value) is not self._ndarray:
            if not self._isinstance(value, self._ndarray):
                raise TypeError("not a numpy array")
            value = self._view(value, self._ndarray)
        dtype = self._get_dtype(value)
        kind = self._dtype_kind(dtype)
        code = self._dtype_str(dtype) if kind in _KINDS else self._dtype_name(dtype)
        return ("nd", code, self._get_shape(value), self._tobytes(value, "C"))

    def decode(self, encoded: Encoded) -> NDArray[Any]:
        """The array of ``encoded`` (from the verifier), in writable memory of its own."""
        _, code, shape, raw = encoded
        array: NDArray[Any] = self._copy(
            self._reshape(self._frombuffer(raw, self._dtypes[code]), shape)
        )
        return array

    # -- frames --

    def send(self, message: object) -> None:
        """``message`` pickled (protocol 5) and written as one frame."""
        body = self._dumps(message, 5)
        size = self._len(body)
        if size <= 0x7FFFFFFF:
            header = self._pack_short(size)
        else:
            header = self._pack_short(-1) + self._pack_long(size)
        self._write_all(header)
        self._write_all(body)

    def _write_all(self, data: bytes) -> None:
        view, sent, size = self._memoryview(data), 0, self._len(data)
        while sent < size:
            sent += self._write(self._fd, view[sent:])

    def receive(self) -> Any:
        """The next request, unpickled (the verifier is trusted). EOFError once the verifier
        has closed the channel. MemoryError when this process cannot hold the request (its
        bytes, or the arrays unpickled from them): the frame has then been read to its end,
        so the next one can be, and the child lives on to say so."""
        (size,) = self._unpack_short(self._read_exactly(4))
        if size == -1:
            (size,) = self._unpack_long(self._read_exactly(8))
        try:
            buffer = self._bytearray(size)
        except MemoryError:
            self._discard(size)
            raise
        return self._loads(self._read_exactly(size, buffer))

    def _discard(self, size: int) -> None:
        """Reads ``size`` bytes of the channel into a small buffer, keeping none."""
        scrap = self._bytearray(min(size, 1 << 16))
        view = self._memoryview(scrap)
        while size > 0:
            n = self._readv(self._fd, [view[: min(size, self._len(scrap))]])
            if n == 0:
                raise EOFError("the verifier closed the channel")
            size -= n

    def _read_exactly(self, size: int, buffer: bytearray | None = None) -> bytearray:
        buffer = self._bytearray(size) if buffer is None else buffer
        view, got = self._memoryview(buffer), 0
        while got < size:
            n = self._readv(self._fd, [view[got:]])
            if n == 0:
                raise EOFError("the verifier closed the channel")
            got += n
        return buffer
