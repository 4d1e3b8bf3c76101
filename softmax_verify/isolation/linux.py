"""Linux process controls (``prctl``) that both sides of the child's channel use.

Elsewhere each is a no-op: the verifier's own signal handlers and cleanup remain.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

__all__ = ["die_with_parent"]

_PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int, signum: int = signal.SIGKILL) -> None:
    """Get ``signum`` when the verifier dies, however it dies (Linux); exit if it already
    has."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, int(signum), 0, 0, 0)
        except (OSError, AttributeError):  # no prctl: the verifier's own handlers remain
            pass
    if os.getppid() != parent:  # the verifier died before prctl took effect
        os._exit(1)
