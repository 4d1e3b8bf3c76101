"""An echo, not a softmax: its forward returns what it was given and writes into its
input; its backward returns its upstream gradient and writes into it and into the cache.
At import it patches the function named by SOFTMAX_VERIFY_TEST_PATCH (``PATCHES``) so
as to change what its process sends to the verifier or reads from it: the verifier must
still see exactly what each call returned and that each call wrote to its inputs."""

import builtins
import io
import math
import os
import pickle
import socket
import struct
import sys
from multiprocessing import connection, reduction

import numpy as np

_ORIGINAL = {
    "array": np.array,
    "asc": np.ascontiguousarray,
    "frombuffer": np.frombuffer,
    "dtype": np.dtype,
    "dumps": pickle.dumps,
    "loads": pickle.loads,
    "send_bytes": connection.Connection.send_bytes,
    "forking_loads": reduction.ForkingPickler.loads,
    "pack": struct.pack,
    "unpack": struct.unpack,
    "write": os.write,
    "readv": os.readv,
    "len": builtins.len,
    "memoryview": builtins.memoryview,
    "BytesIO": io.BytesIO,
    "prod": math.prod,
    "sendall": socket.socket.sendall,
}


def _zeroed(obj):
    """``obj`` with every bytes object in it (the arrays' data) zeroed."""
    if type(obj) is bytes:
        return b"\0" * _ORIGINAL["len"](obj)
    if type(obj) in (tuple, list):
        return type(obj)(_zeroed(item) for item in obj)
    if type(obj) is dict:
        return {key: _zeroed(value) for key, value in obj.items()}
    return obj


def _long(data):
    return type(data) in (bytes, bytearray, memoryview) and _ORIGINAL["len"](data) > 64


def _flip_last(data):
    changed = bytearray(data)
    changed[-1] ^= 0xFF
    return bytes(changed)


class _BytesIO(io.BytesIO):
    def getbuffer(self):
        data = _ORIGINAL["BytesIO"].getvalue(self)
        return _ORIGINAL["memoryview"](_flip_last(data) if _long(data) else data)


class Lying(np.ndarray):
    """What a forward may return: each method and attribute an encoder might use lies (its
    dtype too: float32 for float64, a float all the same, as the checks want one)."""

    def tobytes(self, order="C"):
        return b"\0" * self.nbytes

    @property
    def dtype(self):
        real = np.ndarray.__dict__["dtype"].__get__(self)
        return _ORIGINAL["dtype"]("<f4" if real.itemsize == 8 else "<f8")

    def view(self, *args, **kwargs):
        raise RuntimeError("view refused")

    def __array__(self, *args, **kwargs):
        return np.zeros(np.ndarray.__dict__["shape"].__get__(self))

    def __buffer__(self, flags):
        return _ORIGINAL["memoryview"](b"\0" * self.nbytes)


def _module(name):
    return sys.modules.get(name)


def _patch_package_globals():
    wire = _module("softmax_verify.isolation.wire")
    if wire is not None:
        encode = wire.encode_array
        wire.encode_array = lambda value: encode(np.zeros_like(value))
    serve = _module("softmax_verify.isolation.child.serve")
    if serve is not None and hasattr(serve, "encode_array"):
        serve.encode_array = wire.encode_array


PATCHES = {
    "numpy.ascontiguousarray": lambda: setattr(
        np, "ascontiguousarray", lambda a, *k, **kw: _ORIGINAL["asc"](np.zeros_like(a))
    ),
    "numpy.array: a copy that is no copy": lambda: setattr(
        np, "array", lambda a, *k, **kw: a if kw.get("copy") else _ORIGINAL["array"](a, *k, **kw)
    ),
    "numpy.frombuffer": lambda: setattr(
        np, "frombuffer", lambda *a, **k: np.zeros_like(_ORIGINAL["frombuffer"](*a, **k))
    ),
    "numpy.dtype": lambda: setattr(np, "dtype", lambda *a, **k: _ORIGINAL["dtype"]("<f4")),
    "numpy.array_equal": lambda: setattr(np, "array_equal", lambda *a, **k: True),
    "pickle.dumps": lambda: setattr(
        pickle, "dumps", lambda obj, *a, **k: _ORIGINAL["dumps"](_zeroed(obj), *a, **k)
    ),
    "pickle.loads": lambda: setattr(
        pickle, "loads", lambda data, *a, **k: _zeroed(_ORIGINAL["loads"](data, *a, **k))
    ),
    "Connection.send_bytes": lambda: setattr(
        connection.Connection,
        "send_bytes",
        lambda self, buf, *a: _ORIGINAL["send_bytes"](
            self, _ORIGINAL["dumps"](_zeroed(_ORIGINAL["loads"](buf)), 5)
        ),
    ),
    "ForkingPickler.loads": lambda: setattr(
        reduction.ForkingPickler,
        "loads",
        classmethod(lambda cls, data, *a: _zeroed(_ORIGINAL["forking_loads"](data, *a))),
    ),
    "struct.pack": lambda: setattr(
        struct, "pack", lambda fmt, *v: _ORIGINAL["pack"](fmt, *[n + 1 for n in v])
    ),
    "struct.unpack": lambda: setattr(
        struct, "unpack", lambda fmt, b: tuple(n + 1 for n in _ORIGINAL["unpack"](fmt, b))
    ),
    "os.write": lambda: setattr(
        os, "write", lambda fd, d: _ORIGINAL["write"](fd, _flip_last(d) if _long(d) else d)
    ),
    "os.readv": lambda: setattr(os, "readv", lambda fd, buffers: 0),
    "socket.socket.sendall": lambda: setattr(socket.socket, "sendall", lambda *a: None),
    "io.BytesIO": lambda: setattr(io, "BytesIO", _BytesIO),
    "math.prod": lambda: setattr(math, "prod", lambda *a, **k: 0),
    "builtins.len": lambda: setattr(
        builtins, "len", lambda x: _ORIGINAL["len"](x) + (1 if _long(x) else 0)
    ),
    "builtins.memoryview": lambda: setattr(
        builtins,
        "memoryview",
        lambda x: _ORIGINAL["memoryview"](_flip_last(bytes(x)) if _long(x) else x),
    ),
    "softmax_verify's own module globals": _patch_package_globals,
    "an ndarray subclass that lies": lambda: None,  # the forward returns a Lying array
}

_CHOSEN = os.environ.get("SOFTMAX_VERIFY_TEST_PATCH", "")


def forward(x):
    given = x.copy()
    x[...] = 7.0  # writes into its input
    if _CHOSEN == "an ndarray subclass that lies":
        return given.view(Lying)
    return given


def backward(dout, cache):
    given = dout.copy()
    dout[...] = 7.0  # writes into its upstream gradient
    cache[...] = 7.0  # and into the forward's output, its cache
    return given


if _CHOSEN:
    PATCHES[_CHOSEN]()
