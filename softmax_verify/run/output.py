"""``--output FILE``: the report written whole, once the run has ended, or not at all.

The report goes to a new file in FILE's directory (the same file system, so that
``os.replace`` is a rename), flushed to disk, then renamed over FILE, as test runners
write their reports. A reader sees the old file or the new one, never half of one; a
process that opened FILE during the run (to rewrite it after the verifier's exit, say)
holds the old file and cannot touch the new report. A process that opens FILE by name
afterwards could: the verifier stops every process the target started before writing
(``isolation.reaper``).

The permission bits are those ``open(FILE, "w")`` would give: an existing file keeps its
own; a new one gets ``0o666`` less the umask. Unlike ``open``, a symbolic link at FILE
is replaced, not written through, and the file is this process's user's.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
import threading

__all__ = ["output_problem", "write_atomic"]

_UMASK_LOCK = threading.Lock()


def output_problem(path: str) -> str | None:
    """Why a report could not be written to ``path`` (checked before the run, so that a
    long run does not end in an error), or None."""
    if os.path.isdir(path):
        return "is a directory"
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        return f"no such directory: {directory}"
    if not os.access(directory, os.W_OK | os.X_OK):
        return f"cannot create files in {directory}"
    return None


def current_umask() -> int:
    """This process's umask, without changing it (``/proc/self/status``, Linux 4.7+);
    elsewhere by setting and restoring it, under a lock (it is process-wide)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def write_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    """Replace ``path`` by a file holding ``data``, atomically (see the module doc).

    The file is flushed to disk before the rename: after a crash the old report or the
    whole new one is there, never an empty file (the directory is not synced: the rename
    itself may be lost, leaving the old file). OSError if it cannot be written; no
    temporary file is left behind then.
    """
    target = os.fspath(path)
    try:
        found = os.stat(target)
        mode = stat.S_IMODE(found.st_mode) if stat.S_ISREG(found.st_mode) else None
    except FileNotFoundError:
        mode = None
    if mode is None:
        mode = 0o666 & ~current_umask()
    directory = os.path.dirname(os.path.abspath(target))
    fd, temporary = tempfile.mkstemp(
        dir=directory, prefix=f".{os.path.basename(target)}.", suffix=".tmp"
    )
    try:
        with os.fdopen(fd, "wb") as out:
            os.fchmod(out.fileno(), mode)  # mkstemp made it 0o600
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
