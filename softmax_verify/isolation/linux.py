"""Linux process controls (``prctl``, ``capset``) that both sides of the child's channel use.

- ``die_with_parent``: a lane or a child gets a signal when the process that started it
  dies, however it dies.
- ``set_child_subreaper``: orphans among this process's descendants are reparented to it
  (not to init), so that the verifier can find and stop every process the target
  started, whatever session it put itself in (``reaper``).
- ``set_dumpable(False)``: processes of the same user without CAP_SYS_PTRACE can no
  longer open this process's ``/proc/<pid>/fd/*``, ``mem`` or ``environ``, nor ptrace it
  or take its descriptors with ``pidfd_getfd``: the child cannot write into the
  verifier's stdout or its channel to another verifier process.
- ``drop_capabilities``: the child gives up every capability first thing, so that as root
  it is "the same user" and no more (a root process with CAP_SYS_PTRACE passes every
  dumpable check), and no program it executes gets them back.

Elsewhere than Linux each is a no-op: the verifier's own signal handlers and cleanup
remain. Only the standard library is imported: the child imports this module before
numpy, while it has a single thread (capabilities are per thread).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
from dataclasses import dataclass

__all__ = [
    "LINUX",
    "CapabilityState",
    "capability_state",
    "die_with_parent",
    "drop_capabilities",
    "is_child_subreaper",
    "is_dumpable",
    "set_child_subreaper",
    "set_dumpable",
]

LINUX = sys.platform.startswith("linux")

_PR_SET_PDEATHSIG = 1
_PR_GET_DUMPABLE = 3
_PR_SET_DUMPABLE = 4
_PR_CAPBSET_DROP = 24
_PR_SET_CHILD_SUBREAPER = 36
_PR_GET_CHILD_SUBREAPER = 37
_PR_SET_NO_NEW_PRIVS = 38
_PR_CAP_AMBIENT = 47
_PR_CAP_AMBIENT_CLEAR_ALL = 4
_LINUX_CAPABILITY_VERSION_3 = 0x20080522


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


_libc: ctypes.CDLL | None = None


def _library() -> ctypes.CDLL:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
        _libc.prctl.restype = ctypes.c_int
        _libc.prctl.argtypes = [ctypes.c_int] + [ctypes.c_ulong] * 4
        _libc.capset.restype = ctypes.c_int
        _libc.capset.argtypes = [ctypes.POINTER(_CapHeader), ctypes.POINTER(_CapData)]
    return _libc


def _prctl(option: int, arg2: int = 0) -> int:
    """``prctl(option, arg2, 0, 0, 0)``; OSError naming the option on failure."""
    result = int(_library().prctl(option, arg2, 0, 0, 0))
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl({option}): {os.strerror(err)}")
    return result


def die_with_parent(parent: int, signum: int = signal.SIGKILL) -> None:
    """Get ``signum`` when the verifier dies, however it dies (Linux); exit if it already
    has."""
    if LINUX:
        # No prctl: the verifier's own handlers remain.
        with contextlib.suppress(OSError, AttributeError):
            _prctl(_PR_SET_PDEATHSIG, int(signum))
    if os.getppid() != parent:  # the verifier died before prctl took effect
        os._exit(1)


def set_child_subreaper(on: bool) -> None:
    """Make this process a child subreaper (``on``) or stop being one (Linux 3.4+)."""
    if LINUX:
        _prctl(_PR_SET_CHILD_SUBREAPER, int(on))


def is_child_subreaper() -> bool:
    if not LINUX:
        return False
    value = ctypes.c_int(0)
    # PR_GET_CHILD_SUBREAPER writes through its second argument: a pointer.
    _prctl(_PR_GET_CHILD_SUBREAPER, ctypes.addressof(value))
    return value.value != 0


def set_dumpable(on: bool) -> None:
    """``PR_SET_DUMPABLE``: off, ``/proc/<pid>/`` entries become root's and ptrace-style
    access needs CAP_SYS_PTRACE; no core dump is written. Kept across ``fork``, set back
    to on by ``execve`` (a process started with ``subprocess`` is dumpable again)."""
    if LINUX:
        _prctl(_PR_SET_DUMPABLE, int(on))


def is_dumpable() -> bool:
    return _prctl(_PR_GET_DUMPABLE) != 0 if LINUX else True


def _last_capability() -> int:
    try:
        with open("/proc/sys/kernel/cap_last_cap") as last:
            return int(last.read())
    except (OSError, ValueError):
        return 63


def drop_capabilities() -> None:
    """Give up every capability for good, for this thread and whatever it starts (Linux).

    Call it while the process has a single thread: capabilities are per thread, and a
    thread started earlier keeps its own. In order:

    1. ``PR_SET_NO_NEW_PRIVS``: no ``execve`` (a setuid program, file capabilities, or
       root executing anything) gives back what is dropped;
    2. the ambient set cleared;
    3. the bounding set emptied (needs CAP_SETPCAP: done as root, skipped otherwise);
    4. ``capset``: the effective, permitted and inheritable sets empty.

    1 alone leaves a root thread its capabilities; 4 alone lets a root child's ``execve``
    take every one back. Raises OSError if a capability is still held afterwards.
    """
    if not LINUX:
        return
    _prctl(_PR_SET_NO_NEW_PRIVS, 1)
    with contextlib.suppress(OSError):  # kernels before 4.3 have no ambient set
        _prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL)
    for cap in range(_last_capability() + 1):
        try:
            _prctl(_PR_CAPBSET_DROP, cap)
        except OSError:  # EPERM without CAP_SETPCAP (not root)
            break
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    empty = (_CapData * 2)()  # all zero: the two 32-bit halves of each 64-bit set
    if _library().capset(ctypes.byref(header), empty) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"capset: {os.strerror(err)}")
    state = capability_state()
    if state.effective or state.permitted or state.inheritable or state.ambient:
        raise OSError(f"capabilities remain after dropping them: {state}")


@dataclass(frozen=True)
class CapabilityState:
    """The capability sets of a thread (``/proc/<pid>/status``), as bit masks."""

    effective: int
    permitted: int
    inheritable: int
    bounding: int
    ambient: int
    no_new_privs: bool


def capability_state(pid: int | str = "self") -> CapabilityState:
    """The capability sets in ``/proc/<pid>/status``."""
    fields: dict[str, str] = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return CapabilityState(
        effective=int(fields.get("CapEff", "0"), 16),
        permitted=int(fields.get("CapPrm", "0"), 16),
        inheritable=int(fields.get("CapInh", "0"), 16),
        bounding=int(fields.get("CapBnd", "0"), 16),
        ambient=int(fields.get("CapAmb", "0"), 16),
        no_new_privs=fields.get("NoNewPrivs", "0") == "1",
    )
