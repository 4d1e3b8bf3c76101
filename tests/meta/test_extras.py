"""Every install hint names an extra that pyproject.toml declares."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from conftest import require

from softmax_verify.core.extras import EXTRA_OF, extra_of, install_hint

ROOT = Path(__file__).resolve().parents[2]
#: An extra in an install command: softmax-verify[torch] or .[dev,scipy] (a checkout).
_NAMED = re.compile(r"(?:softmax-verify|\.)\[([a-z0-9_,-]+)\]")


def _declared() -> set[str]:
    return set(metadata.metadata("softmax-verify").get_all("Provides-Extra") or [])


def _tracked_text() -> dict[str, str]:
    files = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    texts = {}
    for name in files:
        path = ROOT / name
        if path.suffix in (".py", ".md", ".toml", ".yml", ".yaml", "") and path.is_file():
            texts[name] = path.read_text(errors="replace")
    return texts


def test_each_module_maps_to_a_declared_extra() -> None:
    assert set(EXTRA_OF.values()) <= _declared()
    assert extra_of("ml_dtypes") == "half"
    assert extra_of("scipy.special") == "scipy"
    assert install_hint("ml_dtypes") == "pip install 'softmax-verify[half]'"
    assert install_hint("jax.numpy", checkout=True) == "pip install -e '.[jax]'"


def test_an_unknown_module_is_named() -> None:
    with pytest.raises(ValueError, match=r"module must be one of .*got 'cupy'"):
        extra_of("cupy")


def test_every_hint_in_the_repository_names_a_declared_extra() -> None:
    declared = _declared()
    seen = 0
    for name, text in _tracked_text().items():
        for match in _NAMED.finditer(text):
            seen += 1
            for extra in match.group(1).split(","):
                assert extra in declared, f"{name}: {match.group(0)} names no extra"
    assert seen >= 5  # the README, the docs, the Makefile and the messages name extras


def test_the_suite_names_the_extra_of_a_missing_module(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ml_dtypes", None)  # its import now raises ImportError
    monkeypatch.setattr("conftest.IN_CI", False)
    with pytest.raises(pytest.skip.Exception, match=re.escape("pip install -e '.[half]'")):
        require("ml_dtypes")


def test_in_ci_a_missing_module_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ml_dtypes", None)
    monkeypatch.setattr("conftest.IN_CI", True)
    with pytest.raises(ImportError):
        require("ml_dtypes")


def test_ci_and_the_bench_install_every_extra() -> None:
    """So that nothing is skipped in CI: .ci/run's full run, and make bench (ALL_EXTRAS),
    install every extra (pytest's is in dev's); the Makefile's comment says the same."""
    every = _declared() - {"pytest"}
    (ci,) = re.findall(r"^make verify EXTRAS=(\S+)$", (ROOT / ".ci" / "run").read_text(), re.M)
    makefile = (ROOT / "Makefile").read_text()
    (bench,) = re.findall(r"^ALL_EXTRAS := (\S+)$", makefile, re.M)
    (comment,) = re.findall(r"^# make verify EXTRAS=(\S+)$", makefile, re.M)
    assert "install EXTRAS=$(ALL_EXTRAS)" in makefile
    for listed in (ci, bench, comment):
        assert set(listed.split(",")) == every
