"""The case being checked, kept in a file, so that a crash can still say on which input.

A crash of the process (see ``_isolation``) ends Hypothesis's search, and with it the
shrinking that gives a failure its minimal counterexample. So the child writes each case
to a file before it checks it (``CaseLog.write``), and the parent reads the last one
after the child died (``read_case``): the input the implementation crashed or got stuck
on, not shrunk.

A record is written at offset 0 over the previous one: its length (8 bytes), the length
of a JSON header (8 bytes), the header (each array's name, dtype, shape and byte count;
or null for a case too large to keep), then the arrays' bytes. A crash in the middle of
a write leaves a record whose length does not match, which reads as None.
Cases of more than ``MAX_BYTES`` are not kept (the record says so), so a huge case never
slows every call down; the cases Hypothesis draws are far smaller.
"""

from __future__ import annotations

import json
import os
import struct
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["MAX_BYTES", "CaseLog", "read_case"]

#: Largest case (sum of its arrays' bytes) the log keeps.
MAX_BYTES = 16 << 20

_LENGTH = struct.Struct("<Q")


class CaseLog:
    """Writes each case over the last, at the start of the file at ``path``."""

    def __init__(self, path: str) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_TRUNC)

    def write(self, case: dict[str, NDArray[Any]]) -> None:
        arrays = [(name, np.asarray(value)) for name, value in case.items()]
        if sum(a.nbytes for _, a in arrays) > MAX_BYTES:
            header, blobs = "null", b""
        else:
            header = json.dumps([[n, a.dtype.str, list(a.shape), a.nbytes] for n, a in arrays])
            blobs = b"".join(a.tobytes(order="C") for _, a in arrays)
        head = header.encode()
        body = _LENGTH.pack(len(head)) + head + blobs
        os.pwrite(self._fd, _LENGTH.pack(len(body)) + body, 0)
        os.ftruncate(self._fd, _LENGTH.size + len(body))

    def clear(self) -> None:
        """No case yet (a new invariant starts): a crash now is not on the last one's."""
        os.ftruncate(self._fd, 0)

    def close(self) -> None:
        os.close(self._fd)


def read_case(path: str) -> dict[str, NDArray[Any]] | None:
    """The last case ``CaseLog`` wrote at ``path``; None if none, too large, or cut short."""
    try:
        with open(path, "rb") as file:
            raw = file.read()
    except OSError:
        return None
    if len(raw) < _LENGTH.size:
        return None
    (length,) = _LENGTH.unpack_from(raw)
    if len(raw) != _LENGTH.size + length:
        return None
    try:
        (size,) = _LENGTH.unpack_from(raw, _LENGTH.size)
        start = 2 * _LENGTH.size
        entries = json.loads(raw[start : start + size])
        if entries is None:
            return None
        case: dict[str, NDArray[Any]] = {}
        offset = start + size
        for name, dtype, shape, nbytes in entries:
            body = raw[offset : offset + nbytes]
            case[name] = np.frombuffer(body, dtype=np.dtype(dtype)).reshape(shape).copy()
            offset += nbytes
        return case
    except Exception:  # our own child wrote it; anything unreadable is simply no case
        return None
