"""The verifier's end of the child's channel: frames read and written under a deadline.

The framing is ``multiprocessing.connection.Connection``'s (CPython 3.10 to 3.13 alike),
which the child's end writes with functions it bound before the target was loaded: a
signed big-endian 4-byte length, then the body; a body longer than ``0x7fffffff`` bytes
is announced by the length -1 and an unsigned big-endian 8-byte length.

``Connection.recv_bytes`` reads a header and then the body with blocking reads: a child
that sends a header and stops would hang the verifier forever. ``read_frame`` waits
with ``poll`` and reads with ``MSG_DONTWAIT`` (the socket itself stays blocking), header
and body under one deadline, refuses a length beyond ``max_size`` before reading (or
allocating) the body, and stops waiting as soon as the child is dead (``died``: its
pidfd; a grandchild holding the socket open would keep the end of the stream away).
"""

from __future__ import annotations

import select
import socket
import struct
import time

from softmax_verify.isolation.wire import WireError

__all__ = [
    "ChannelClosed",
    "FrameError",
    "FrameTimeout",
    "FrameTooLarge",
    "poll_milliseconds",
    "read_frame",
    "write_frame",
]

_SHORT = struct.Struct("!i")
_LONG = struct.Struct("!Q")
_SHORT_MAX = 0x7FFFFFFF
#: The longest wait one ``poll`` call takes (its argument is a C int of milliseconds):
#: longer waits, up to a limit of days or none, are taken as several.
_POLL_MAX_MS = 1 << 30
#: At most this much per ``recv_into``/``send`` call: no giant copies in one system call.
_CHUNK = 1 << 20
_READABLE = select.POLLIN | select.POLLHUP | select.POLLERR


class FrameError(WireError):
    """A frame that is not one: cut short, malformed, too large or too late."""


class ChannelClosed(FrameError, EOFError):
    """The channel ended (the child closed it or died) before any byte of a frame."""


class FrameTooLarge(FrameError):
    def __init__(self, size: int, max_size: int) -> None:
        self.size, self.max_size = size, max_size
        super().__init__(f"a reply of {size} bytes was announced; at most {max_size} can be due")


class FrameTimeout(FrameError, TimeoutError):
    def __init__(self, what: str, got: int, wanted: int, seconds: float) -> None:
        self.got, self.wanted = got, wanted
        super().__init__(
            f"the {what} was cut short: {got} of {wanted} bytes within the call's {seconds:.3g} s"
        )


def poll_milliseconds(deadline: float | None) -> int | None:
    """``poll``'s argument for a wait until ``deadline`` (``time.monotonic()``; None: no
    limit), at most ``_POLL_MAX_MS`` (a caller waiting longer polls again): 0 once due."""
    if deadline is None:
        return _POLL_MAX_MS
    left = deadline - time.monotonic()
    return 0 if left <= 0 else min(_POLL_MAX_MS, int(left * 1000) + 1)


class _Reader:
    def __init__(self, sock: socket.socket, deadline: float | None, died: int | None) -> None:
        self.sock, self.deadline, self.died = sock, deadline, died
        self.start = time.monotonic()
        self.poller: select.poll | None = None  # made on the first wait: most reads never wait

    def fill(self, view: memoryview, what: str, before: int) -> None:
        """Fill ``view`` completely; ``before``: bytes of this frame read already."""
        got, wanted = 0, len(view)
        while got < wanted:
            try:
                n = self.sock.recv_into(view[got:], min(wanted - got, _CHUNK), socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                self.wait(what, got, wanted)
                continue
            except OSError as exc:  # ECONNRESET and the like: the peer is gone
                n = 0
                if before + got == 0:
                    raise ChannelClosed(f"the channel failed ({exc.strerror})") from None
            if n == 0:
                if before + got == 0:
                    raise ChannelClosed("the child closed the channel")
                raise FrameError(
                    f"the {what} was cut short: the channel closed after {got} of {wanted} bytes"
                )
            got += n

    def wait(self, what: str, got: int, wanted: int) -> None:
        if self.poller is None:
            self.poller = select.poll()
            self.poller.register(self.sock.fileno(), _READABLE)
            if self.died is not None:
                self.poller.register(self.died, select.POLLIN)
        while True:
            timeout = poll_milliseconds(self.deadline)
            if timeout == 0:
                raise FrameTimeout(what, got, wanted, (self.deadline or 0.0) - self.start)
            ready = dict(self.poller.poll(timeout))
            if self.sock.fileno() in ready:
                return
            if self.died is not None and self.died in ready:
                # Dead, and nothing more to read: what it sent is all there will be.
                raise FrameError(
                    f"the {what} was cut short: the child died after {got} of {wanted} bytes"
                )


def read_frame(
    sock: socket.socket, *, max_size: int, deadline: float | None = None, died: int | None = None
) -> bytearray:
    """One frame's body, whole, by ``deadline`` (``time.monotonic()``; None: no limit).

    ``max_size``: the longest body accepted; ``died``: a descriptor that becomes readable
    when the peer dies (its pidfd). Raises ChannelClosed (also an EOFError) if the channel
    ends before a frame, FrameTooLarge, FrameTimeout (also a TimeoutError), or FrameError
    for a frame cut short or malformed; the stream is out of step after any of them.
    """
    reader = _Reader(sock, deadline, died)
    header = bytearray(4)
    reader.fill(memoryview(header), "reply's header", 0)
    (size,) = _SHORT.unpack(header)
    if size == -1:
        extended = bytearray(8)
        reader.fill(memoryview(extended), "reply's header", 4)
        (size,) = _LONG.unpack(extended)
    elif size < 0:
        raise FrameError(f"a reply of negative length ({size}) was announced")
    if size > max_size:
        raise FrameTooLarge(size, max_size)
    body = bytearray(size)
    if size:
        reader.fill(memoryview(body), "reply", 4)
    return body


def write_frame(sock: socket.socket, data: bytes, *, deadline: float | None = None) -> None:
    """Send ``data`` as one frame by ``deadline`` (FrameTimeout otherwise: the peer stopped
    reading). Writes with ``MSG_DONTWAIT``, so the socket may stay blocking."""
    size = len(data)
    header = _SHORT.pack(-1) + _LONG.pack(size) if size > _SHORT_MAX else _SHORT.pack(size)
    start = time.monotonic()
    poller: select.poll | None = None
    # A small frame in one send, as Connection does; a large one without copying its body.
    parts = [memoryview(header + data)] if size <= 16384 else [memoryview(header), memoryview(data)]
    for part in parts:
        sent = 0
        while sent < part.nbytes:
            try:
                sent += sock.send(part[sent : sent + _CHUNK], socket.MSG_DONTWAIT)
                continue
            except (BlockingIOError, InterruptedError):
                pass
            if poller is None:
                poller = select.poll()
                poller.register(sock.fileno(), select.POLLOUT | select.POLLERR | select.POLLHUP)
            timeout = poll_milliseconds(deadline)
            if timeout == 0:
                raise FrameTimeout("request", sent, part.nbytes, (deadline or 0.0) - start)
            poller.poll(timeout)
