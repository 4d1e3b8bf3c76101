"""What one drawn case costs in memory, what the machine has, and the check between them.

A run holds, while it checks one case of N x D entries, a fixed number of arrays of that
size (nothing it keeps grows with the number of examples, and the central differences
are chunked so that their stack is at most two perturbed copies: ``gradcheck``).
Counted by role, for one case at a dtype of ``s`` bytes an entry:

- the verifier, in float64 (8 bytes an entry), ``VERIFIER_FLOAT64`` arrays: the
  reference softmax and its float64 intermediates (x, the shifted exponentials), the
  outputs seen as float64 for comparison, the error bounds (the forward's relative bound
  per entry, the tolerance), and for central differences the difference of the two
  perturbed outputs, the numerical VJP and its spread;
- the verifier, at the dtype, ``VERIFIER_AT_DTYPE`` arrays: the drawn input and upstream
  gradient, the code's outputs (y, dx, its cache) as they come back, the copies kept to
  see whether the code wrote to its inputs, the two perturbed inputs of a central
  difference, and each array's bytes on the wire (encoded, and framed);
- the child that runs the code, at the dtype, ``CHILD_AT_DTYPE`` arrays: each input
  decoded into memory of its own, the code's outputs and the copies read from them, the
  perturbed stack and the forward's outputs on it, and each reply's bytes.

The counts are those roles, checked against a measurement rounded up: the peak resident
memory of ``softmax-verify check`` on a correct softmax with its backward, every
invariant, 1000 x 1000 cases (``--rows 1000:1000 --cols 1000:1000``), less that of a
10 x 10 run, per process: the verifier 175 bytes an entry at float32 and 216 at float64
(17 float64 arrays and 10 at the dtype), the child 35 and 87 (9 to 11 at the dtype).
Rounded up to 20, 12 and 12: 352 bytes an entry at float64, 256 at float32, 208 at
float16, a sixth to a fifth over what was measured. ``--masked`` runs, measured the same
way, stay inside it (335 and 228 bytes, verifier and child). The code under test's own
temporaries come on top, and differ by code: the figure is what the verifier itself
needs, so a shape it refuses could not be checked in the memory there is, or only just.

The ``cross_entropy`` kind holds more float64 arrays in the verifier (the label rows and
the target rows q, the oracle's row terms): measured the same way on the bundled
reference, the verifier took 248 bytes an entry at float64 and 244 at float32 with
probability rows (the costliest labels), 216 and 182 with one-hot rows (18 to 30 float64
arrays and 1 to 9 at the dtype); the child 104 and 44, and 121 and 64 (11 to 16 at the
dtype). Rounded up to 28, 10 and 16 (``LOSS_COUNTS``): 432 bytes an entry at float64 and
328 at float32, a fifth and a seventh over the costliest measured.

Lanes (``--jobs``) check dtypes side by side, each in a verifier process and child of
its own: their needs add up; the dtypes of one lane are checked one after the other.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from softmax_verify.core.domain import Domain
from softmax_verify.strategies import largest_shape_in

__all__ = [
    "CHILD_AT_DTYPE",
    "LOSS_COUNTS",
    "VERIFIER_AT_DTYPE",
    "VERIFIER_FLOAT64",
    "MemoryShortage",
    "available_memory",
    "bytes_per_entry",
    "check_memory",
    "size",
]

#: Arrays of a case's size the verifier holds at once in float64 (the module docstring).
VERIFIER_FLOAT64 = 20
#: Arrays of a case's size the verifier holds at once at the case's dtype.
VERIFIER_AT_DTYPE = 12
#: Arrays of a case's size the child holds at once at the case's dtype.
CHILD_AT_DTYPE = 12

#: The same three counts for the cross_entropy kind (the module docstring).
LOSS_COUNTS = (28, 10, 16)

#: A cgroup limit at least this large means none (cgroup v1 writes 2**63 less a page).
_UNLIMITED = 1 << 62


def bytes_per_entry(dtype: np.dtype[Any], kind: str = "softmax") -> int:
    """What one entry of a case at ``dtype`` costs the run: ``VERIFIER_FLOAT64`` float64
    arrays and ``VERIFIER_AT_DTYPE + CHILD_AT_DTYPE`` at the dtype (352 bytes at float64);
    for the ``cross_entropy`` kind, ``LOSS_COUNTS`` of them (432 bytes at float64)."""
    wide, verifier, child = (
        LOSS_COUNTS
        if kind == "cross_entropy"
        else (VERIFIER_FLOAT64, VERIFIER_AT_DTYPE, CHILD_AT_DTYPE)
    )
    return wide * 8 + (verifier + child) * np.dtype(dtype).itemsize


def size(nbytes: float) -> str:
    """``nbytes`` in the binary unit that keeps it under 1024 (TiB at most)."""
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if nbytes < 1024:
            return f"{nbytes:.0f} {unit}" if unit == "bytes" else f"{nbytes:.1f} {unit}"
        nbytes /= 1024
    return f"{nbytes:.1f} TiB"


class MemoryShortage(ValueError):
    """The largest case a domain lets the strategies draw needs more memory than there is.

    ``str()`` names the parameter as ``verify()`` spells it (``domain``); each entry point
    names its own with ``explain`` (the command its options, the contract its attribute).
    """

    def __init__(
        self,
        shape: tuple[int, int],
        dtypes: Sequence[np.dtype[Any]],
        need: int,
        available: int,
        kind: str = "softmax",
    ) -> None:
        self.shape, self.dtypes, self.need, self.available = shape, tuple(dtypes), need, available
        self.kind = kind
        super().__init__(self.explain("domain"))

    def explain(self, declared: str) -> str:
        """One line: ``declared`` (what set the shapes) allows cases too large to hold."""
        rows, cols = self.shape
        names = " and ".join(dtype.name for dtype in self.dtypes)
        costs = " and ".join(str(bytes_per_entry(dtype, self.kind)) for dtype in self.dtypes)
        together = " side by side (--jobs)" if len(self.dtypes) > 1 else ""
        return (
            f"{declared}: cases of up to {rows} x {cols} entries; checking one at {names}"
            f"{together} takes about {size(self.need)} ({costs} bytes an entry: the input, "
            "the reference, the outputs, the perturbed copies of central differences, the "
            f"child's copies), more than the {size(self.available)} of memory available: "
            "declare fewer rows or columns"
        )


def check_memory(
    domain: Domain,
    lanes: Sequence[Sequence[np.dtype[Any]]],
    *,
    kind: str = "softmax",
    available: int | None = None,
) -> None:
    """MemoryShortage when the largest case of ``domain`` cannot be held: the lanes' needs
    added (each lane's costliest dtype, ``bytes_per_entry`` of ``kind``) against
    ``available`` bytes (default: ``available_memory()``). Nothing is checked when the
    memory cannot be read."""
    rows, cols = largest_shape_in(domain)
    costliest = [max(lane, key=lambda d: bytes_per_entry(d, kind)) for lane in lanes if lane]
    if not costliest:
        return
    need = sum(rows * cols * bytes_per_entry(dtype, kind) for dtype in costliest)
    have = available_memory() if available is None else available
    if have is not None and need > have:
        raise MemoryShortage((rows, cols), costliest, need, have, kind)


def available_memory() -> int | None:
    """Bytes the run can still take: the least of the kernel's estimate (``MemAvailable``,
    /proc/meminfo; where it is missing, ``os.sysconf``'s available pages) and the room
    left under this process's cgroup memory limit, if one is set (v2 ``memory.max`` less
    ``memory.current``, v1 ``memory.limit_in_bytes`` less ``memory.usage_in_bytes``).
    None when no source can be read: the check is then skipped."""
    found = [n for n in (_meminfo_available(), _cgroup_room()) if n is not None]
    if not found:
        found = [n for n in (_sysconf_available(),) if n is not None]
    return min(found) if found else None


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024  # in kB
    except (OSError, ValueError, IndexError):
        pass
    return None


def _sysconf_available() -> int | None:
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def _cgroup_room() -> int | None:
    """The room under this process's cgroup memory limit (None: no limit, or unreadable).
    Its path from /proc/self/cgroup, else the mount's root (a container sees its own)."""
    try:
        lines = Path("/proc/self/cgroup").read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    root = Path("/sys/fs/cgroup")
    for line in lines:
        hierarchy, _, controllers_path = line.partition(":")
        controllers, _, path = controllers_path.partition(":")
        if hierarchy == "0" and not controllers:
            places, names = [root / path.lstrip("/"), root], ("memory.max", "memory.current")
        elif "memory" in controllers.split(","):
            v1 = root / "memory"
            places = [v1 / path.lstrip("/"), v1]
            names = ("memory.limit_in_bytes", "memory.usage_in_bytes")
        else:
            continue
        for place in places:
            room = _room(place / names[0], place / names[1])
            if room is not None:
                return room
    return None


def _room(limit_file: Path, usage_file: Path) -> int | None:
    try:
        limit_text = limit_file.read_text(encoding="ascii").strip()
        if limit_text == "max" or int(limit_text) >= _UNLIMITED:
            return None
        return max(0, int(limit_text) - int(usage_file.read_text(encoding="ascii").strip()))
    except (OSError, ValueError):
        return None
