"""The README's set-up, tried as a newcomer tries it: from a clone, and from a new virtualenv.

Marked ``slow`` (each test installs the package from scratch): ``make verify`` runs them
in CI (``CI=true``) or with ``SLOW=1``, and deselects them otherwise. The clone is of the
committed HEAD, as a newcomer's is.
"""

from __future__ import annotations

import os
import re
import subprocess
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow

#: Variables the Makefile reads (``EXTRAS ?= dev``...): make exports the ones given on its
#: command line to every recipe, so CI's ``make verify EXTRAS=dev,torch,...`` would reach
#: the clone's ``make check`` and install the frameworks a newcomer does not have.
_MAKE_VARIABLES = frozenset(
    re.findall(r"^([A-Za-z_]+)\s*[?:]?=", (ROOT / "Makefile").read_text(), flags=re.MULTILINE)
)

#: What a newcomer's shell has: none of the suite's Hypothesis, make or CI settings.
_ENV = {
    k: v
    for k, v in os.environ.items()
    if not k.startswith(("HYPOTHESIS_", "PYTEST_", "VIRTUAL_ENV", "MAKE", "MFLAGS"))
    and k not in {"CI", "PYTHONPATH", *_MAKE_VARIABLES}
}


def _run(argv: list[str], cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, cwd=cwd, env=_ENV, capture_output=True, text=True, timeout=timeout, check=False
    )


def _clone(tmp_path: Path) -> Path:
    clone = tmp_path / "softmax-verify"
    done = _run(["git", "clone", "-q", str(ROOT), str(clone)], tmp_path)
    assert done.returncode == 0, done.stderr
    return clone


def test_make_check_passes_on_a_fresh_clone(tmp_path: Path) -> None:
    clone = _clone(tmp_path)
    reference = _run(["make", "check"], clone)
    assert reference.returncode == 0, reference.stdout + reference.stderr
    assert "0 failed, 0 errors" in reference.stdout
    # The venv it made has the dev extra alone: no optional framework.
    frameworks = _run(
        [".venv/bin/python", "-c", "import importlib.util as u; "
         "print([m for m in ('torch', 'jax', 'ml_dtypes', 'scipy') if u.find_spec(m)])"],
        clone,
    )  # fmt: skip
    assert frameworks.stdout.strip() == "[]"
    fixed = _run(["make", "check", "TARGET=examples/notebook_fixed.py"], clone)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    buggy = _run(["make", "check", "TARGET=examples/notebook_buggy.py"], clone)
    assert buggy.returncode != 0
    assert "FAILED: stage_gradients" in buggy.stdout
    assert "first wrong stage: dexps_1" in buggy.stdout


_CONTRACT = """
from softmax_verify import softmax, softmax_backward
from softmax_verify.testing import SoftmaxContract


class TestMySoftmax(SoftmaxContract):
    forward = staticmethod(softmax)
    backward = staticmethod(softmax_backward)
"""

_API = """
import softmax_verify as sv
from softmax_verify import softmax, softmax_backward

report = sv.verify(softmax, softmax_backward)
assert report, report.to_text()
print("verified", len(report.results))
"""


def test_pip_install_then_the_readme_commands_in_a_new_virtualenv(tmp_path: Path) -> None:
    clone = _clone(tmp_path)
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    bin_dir = env_dir / "bin"
    installed = _run(
        [str(bin_dir / "python"), "-m", "pip", "install", "--quiet", f"{clone}[pytest]"], tmp_path
    )
    assert installed.returncode == 0, installed.stderr
    project = tmp_path / "project"  # the user's own folder, outside the clone
    project.mkdir()
    check = _run([str(bin_dir / "softmax-verify"), "check"], project)
    assert check.returncode == 0, check.stdout + check.stderr
    buggy = _run(
        [str(bin_dir / "softmax-verify"), "check", str(clone / "examples" / "notebook_buggy.py"),
         "--dtype", "float64"],
        project,
    )  # fmt: skip
    assert buggy.returncode == 1, buggy.stdout + buggy.stderr
    assert "FAILED: stage_gradients (float64)" in buggy.stdout
    listing = _run([str(bin_dir / "softmax-verify"), "list"], project)
    assert listing.returncode == 0
    assert "rows_sum_to_one" in listing.stdout
    api = _run([str(bin_dir / "python"), "-c", _API], project)
    assert api.returncode == 0, api.stdout + api.stderr
    assert "verified" in api.stdout
    # The command and verify() write nothing into the user's folder (Hypothesis's files
    # are kept in private storage).
    assert list(project.iterdir()) == []
    (project / "test_my_softmax.py").write_text(_CONTRACT)
    contract = _run([str(bin_dir / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider"],
                    project)  # fmt: skip
    assert contract.returncode == 0, contract.stdout + contract.stderr
    assert " passed" in contract.stdout
    # Installed as softmax_verify.strategies: nothing named `strategies` lands beside the
    # user's own modules.
    names = _run(
        [str(bin_dir / "python"), "-c", "import importlib.util as u; "
         "print(u.find_spec('strategies'), u.find_spec('softmax_verify.strategies') is not None)"],
        project,
    )  # fmt: skip
    assert names.stdout.split() == ["None", "True"]
