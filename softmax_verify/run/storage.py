"""Where Hypothesis keeps its files while softmax-verify runs: never the user's folder.

Hypothesis writes ``.hypothesis/`` under the working directory (its example
database, and a cache of the constants it finds in loaded modules) even with
``database=None``. A verifier run is not the user's test suite: for its
duration, Hypothesis's storage is softmax-verify's own cache directory,
``$XDG_CACHE_HOME/softmax-verify/hypothesis`` (``~/.cache`` by default), also for
any child process (through the environment variable). A cache directory, not a
temporary one: a verifier stopped by SIGKILL cannot remove anything, and must not
leave files behind. Where that directory cannot be made, a temporary directory
removed afterwards serves instead. A storage directory the user chose
(``HYPOTHESIS_STORAGE_DIRECTORY``) is kept.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator

from hypothesis import configuration

__all__ = ["STORAGE_VARIABLE", "private_hypothesis_storage"]

STORAGE_VARIABLE = "HYPOTHESIS_STORAGE_DIRECTORY"


def _cache_directory() -> str | None:
    """softmax-verify's own Hypothesis storage, made if need be; None if it cannot be."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    directory = os.path.join(base, "softmax-verify", "hypothesis")
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError:
        return None
    return directory if os.access(directory, os.W_OK) else None


@contextlib.contextmanager
def private_hypothesis_storage() -> Iterator[None]:
    """Point Hypothesis's storage at softmax-verify's own directory until the block ends."""
    if os.environ.get(STORAGE_VARIABLE):  # the user's choice, or an enclosing block's
        yield
        return
    # Hypothesis's module-level setting (None unless set_hypothesis_home_dir was called
    # or storage was used); put back afterwards.
    previous = getattr(configuration, "__hypothesis_home_directory", None)
    cached = _cache_directory()
    with (
        contextlib.nullcontext(cached)
        if cached is not None
        else tempfile.TemporaryDirectory(prefix="softmax-verify-hypothesis-")
    ) as directory:
        os.environ[STORAGE_VARIABLE] = directory
        configuration.set_hypothesis_home_dir(directory)
        try:
            yield
        finally:
            del os.environ[STORAGE_VARIABLE]
            configuration.set_hypothesis_home_dir(previous)
