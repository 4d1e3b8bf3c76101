"""Test configuration: Hypothesis profiles and the optional frameworks.

Profiles are registered by ``softmax_verify.run.profiles`` (one place for the tests,
the CLI and ``verify``). The active one is pytest's ``--hypothesis-profile`` if
given, else ``HYPOTHESIS_PROFILE``, else ``ci`` under CI and ``dev`` locally.
"""

from __future__ import annotations

import atexit
import importlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import settings

from softmax_verify.cli import main
from softmax_verify.core.extras import install_hint
from softmax_verify.run.profiles import default_profile

settings.load_profile(default_profile())

sys.path.insert(0, os.path.dirname(__file__))  # for tests/bad_impls.py

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

# keras 3 fixes its backend at its first import, from KERAS_BACKEND, else from
# $KERAS_HOME/keras.json, which that import writes when missing (by default in ~/.keras):
# the tests run on keras's default backend whatever the developer's settings say, write
# nothing into their home, and hand both to the children they start.
os.environ["KERAS_BACKEND"] = "tensorflow"
os.environ["KERAS_HOME"] = tempfile.mkdtemp(prefix="softmax-verify-keras-")
atexit.register(shutil.rmtree, os.environ["KERAS_HOME"], True)


def require(module: str) -> ModuleType:
    """Import an optional framework; in CI a missing one fails the test instead of skipping it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        if IN_CI:
            raise
        # Locally the frameworks are optional extras; .ci/run installs them all.
        pytest.skip(f"{module} is not installed ({install_hint(module, checkout=True)})")


@pytest.fixture
def in_repo_root(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Run from the repository root (relative example paths); undo the imports of targets."""
    monkeypatch.chdir(Path(__file__).resolve().parent.parent)
    monkeypatch.setattr(sys, "path", list(sys.path))  # loading a file target prepends its folder
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        if name.startswith(("softmax_verify_target_", "notebook_")):
            del sys.modules[name]


def check_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any]]:
    """``softmax-verify check ARGV --format json`` in process: (exit status, the report)."""
    code, out, err = cli(capsys, "check", *argv, "--format", "json")
    assert out.startswith("{"), out + err
    doc: dict[str, Any] = json.loads(out)
    return code, doc


def statuses(doc: dict[str, Any]) -> dict[tuple[str, str], str]:
    """Each (invariant, dtype) of a JSON report and its status."""
    return {(r["invariant"], r["dtype"]): r["status"] for r in doc["results"]}


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """``main(argv)`` in process: (exit status, stdout, stderr); argparse's exits count too."""
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err
