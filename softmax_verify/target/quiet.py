"""TensorFlow's import-time log lines, kept off the user's stderr in the child process.

Importing TensorFlow (2.21) writes log lines straight to file descriptor 2, before its
logging is set up: absl's notice ``WARNING: All log messages before
absl::InitializeLog() is called are written to STDERR``, oneDNN's ``I... port.cc:153]
oneDNN custom operations are on...`` (twice) and cpu_feature_guard's two lines about
CPU instructions. ``TF_CPP_MIN_LOG_LEVEL`` does not silence them; only
``TF_ENABLE_ONEDNN_OPTS=0`` with it does, and that changes TensorFlow's float32 results
by a few ulps, so the check would not be of the code the user runs.

So in the child process of ``softmax-verify check`` (never in the user's own process:
``verify()`` and ``--no-isolate`` leave its imports alone), ``quiet_imports()`` puts a
finder first on ``sys.meta_path``. When ``tensorflow`` is first imported (by the
user's module, by keras, inside a call: whenever), that import runs with file
descriptor 2 sent to a temporary file; then the file's lines go to the real stderr,
except TensorFlow's informational and warning log lines (glog's format, ``I0000
00:00:00.000000  123 port.cc:153] ...``, and ``W...``), absl's notice and the second
line of cpu_feature_guard's. The full ``tensorflow`` wheel on a machine without a GPU
also reports ``E... cuda_platform.cc:52] failed call to cuInit: ...`` when its devices are
first listed (at the first operation, not at import): the import lists them while
quieted, and that line, which says no more than the dropped ``Could not find cuda
drivers on your machine, GPU will not be used``, is dropped too. Its other error lines
(``E``, ``F``) and anything else written
meanwhile (the user's prints, Python's warnings) still reach stderr, in their order,
once the import is done: lost only if the import crashes the process. Installing the
finder imports nothing.
"""

from __future__ import annotations

import importlib.abc
import os
import re
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import Any

__all__ = ["QUIETED", "is_noise", "quiet_imports"]

#: The modules whose first import is quieted.
QUIETED: tuple[str, ...] = ("tensorflow",)

_NOISE = re.compile(
    rb"[IW]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [\w./-]+:\d+\] .*"
    rb"|E\d{4} \d\d:\d\d:\d+\.\d+ +\d+ cuda_platform\.cc:\d+\] failed call to cuInit: .*"
    rb"|WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    rb"|To enable the following instructions: .*rebuild TensorFlow with the appropriate "
    rb"compiler flags\."
)


def is_noise(line: bytes) -> bool:
    """Whether ``line`` (without its end) is one of the log lines dropped (module doc)."""
    return _NOISE.fullmatch(line.rstrip(b"\r\n")) is not None


@contextmanager
def _stderr_filtered() -> Iterator[None]:
    """File descriptor 2 sent to a temporary file; then its lines but the noise sent on."""
    if sys.stderr is not None:
        sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(prefix="softmax-verify-") as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            if sys.stderr is not None:
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            kept = [line for line in capture.read().splitlines(True) if not is_noise(line)]
            if kept:
                os.write(2, b"".join(kept))


def _list_devices(module: ModuleType) -> None:
    """TensorFlow's devices listed now, so that their first listing's log lines (module
    doc) are filtered too; it would happen at the target's first operation anyway."""
    config = getattr(module, "config", None)
    list_devices = getattr(config, "list_physical_devices", None)
    if callable(list_devices):
        list_devices()


class _QuietLoader(importlib.abc.Loader):
    """A module's own loader, its ``exec_module`` run with stderr filtered."""

    def __init__(self, loader: Any) -> None:
        self._loader = loader

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        module: ModuleType | None = self._loader.create_module(spec)
        return module

    def exec_module(self, module: ModuleType) -> None:
        with _stderr_filtered():
            self._loader.exec_module(module)
            _list_devices(module)

    def __getattr__(self, name: str) -> Any:  # get_source, get_resource_reader, ...
        return getattr(self._loader, name)


class _QuietFinder(importlib.abc.MetaPathFinder):
    """Finds a ``QUIETED`` module with the other finders, and wraps its loader."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname not in QUIETED:
            return None
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            if finder is self or find is None:
                continue
            spec: ModuleSpec | None = find(fullname, path, target)
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = _QuietLoader(spec.loader)
                return spec
        return None


def quiet_imports() -> None:
    """Install the finder (once): the child process's own imports of ``QUIETED`` modules
    leave their log lines out of stderr."""
    if not any(isinstance(finder, _QuietFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _QuietFinder())
