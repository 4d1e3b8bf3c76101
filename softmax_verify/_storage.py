"""Where Hypothesis keeps its files while softmax-verify runs: never the user's folder.

Hypothesis writes ``.hypothesis/`` under the working directory (its example
database, and a cache of the constants it finds in loaded modules) even with
``database=None``. A verifier run is not the user's test suite: for its
duration, Hypothesis's storage is a temporary directory, removed afterwards,
also for the child processes of ``check`` (through the environment variable).
A storage directory the user chose (``HYPOTHESIS_STORAGE_DIRECTORY``) is kept.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator

from hypothesis import configuration

__all__ = ["STORAGE_VARIABLE", "private_hypothesis_storage"]

STORAGE_VARIABLE = "HYPOTHESIS_STORAGE_DIRECTORY"


@contextlib.contextmanager
def private_hypothesis_storage() -> Iterator[None]:
    """Point Hypothesis's storage at a temporary directory until the block ends."""
    if os.environ.get(STORAGE_VARIABLE):  # the user's choice, or an enclosing block's
        yield
        return
    # Hypothesis's module-level setting (None unless set_hypothesis_home_dir was called
    # or storage was used); put back afterwards.
    previous = getattr(configuration, "__hypothesis_home_directory", None)
    with tempfile.TemporaryDirectory(prefix="softmax-verify-hypothesis-") as directory:
        os.environ[STORAGE_VARIABLE] = directory
        configuration.set_hypothesis_home_dir(directory)
        try:
            yield
        finally:
            del os.environ[STORAGE_VARIABLE]
            configuration.set_hypothesis_home_dir(previous)
