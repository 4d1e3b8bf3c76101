"""Where this package is installed: frames and files under it are the verifier's own.

A traceback or a crash dump names the user's code by its innermost frame outside
this folder (``_sandbox.user_location``, ``_remote.crash_location``).
"""

from __future__ import annotations

import os

__all__ = ["PACKAGE_DIR", "in_package"]

#: The absolute path of the ``softmax_verify`` folder (this file is in its core/).
PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def in_package(path: str) -> bool:
    """Whether ``path`` (absolute or relative to the working directory) is under the package."""
    return os.path.abspath(path).startswith(PACKAGE_DIR + os.sep)
