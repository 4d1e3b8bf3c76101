"""softmax-verify inside a user's project that has its own ``strategies`` module and profile.

A Hypothesis suite often has a ``strategies.py``. softmax-verify's strategies install
as ``softmax_verify.strategies``, so whichever comes first on sys.path, the user's
project or site-packages, each side imports its own. The scratch project below
imports its ``strategies`` from its test file, its conftest and its softmax module
(which fails at import if it gets anything else), and is run by the contract and by
the command in both orders, each in a fresh process.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from softmax_verify.invariants import INVARIANTS

USERS_STRATEGIES = '''\
"""The user's own strategies: same module name, different functions."""
from hypothesis import strategies as st

OWNER = "the user's project"


def logits():  # no dtype or max_magnitude: softmax-verify must never call this one
    return st.lists(st.floats(-10, 10), min_size=1)
'''

USERS_SOFTMAX = """\
import numpy as np

from strategies import OWNER  # the project's module, whatever else is installed

assert OWNER == "the user's project", OWNER


def softmax_forward(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    y = e / e.sum(axis=1, keepdims=True)
    return y, y


def softmax_backward(dout, y):
    return y * (dout - (dout * y).sum(axis=1, keepdims=True))
"""

USERS_CONFTEST = """\
from hypothesis import settings

from strategies import OWNER

assert OWNER == "the user's project", OWNER
settings.register_profile("project", max_examples=8, deadline=None)
settings.load_profile("project")
"""

USERS_TEST = """\
from strategies import OWNER, logits

from softmax_verify.testing import SoftmaxContract

import mysoftmax


def test_the_projects_strategies_are_its_own():
    assert OWNER == "the user's project"
    logits().validate()


class TestMySoftmax(SoftmaxContract, exclude=("stage_gradients",)):
    forward = staticmethod(mysoftmax.softmax_forward)
    backward = staticmethod(mysoftmax.softmax_backward)
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    (root / "strategies.py").write_text(USERS_STRATEGIES)
    (root / "mysoftmax.py").write_text(USERS_SOFTMAX)
    (root / "conftest.py").write_text(USERS_CONFTEST)
    (root / "test_mysoftmax.py").write_text(USERS_TEST)
    (tmp_path / "elsewhere").mkdir()
    return root


def run(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``python -c code`` in ``cwd``, without this suite's Hypothesis settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HYPOTHESIS_")}
    env.pop("PYTHONPATH", None)
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_nothing_named_strategies_is_installed(tmp_path: Path) -> None:
    code = (
        "import importlib.util, softmax_verify.strategies as s\n"
        "print(importlib.util.find_spec('strategies'), s.__name__)\n"
    )
    proc = run(code, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "None softmax_verify.strategies\n"


# The project's own test, and one per invariant and dtype (stage_gradients is excluded:
# this softmax's cache has no named stages).
CONTRACT_TESTS = 1 + 2 * (len(INVARIANTS) - 1)


@pytest.mark.parametrize(
    ("where", "args"),
    [
        # the project first on sys.path: pytest's default rootdir insertion, from its folder
        pytest.param("project", [], id="project-first"),
        # the project last: site-packages comes first
        pytest.param("elsewhere", ["--import-mode=append", "{project}"], id="project-last"),
    ],
)
def test_the_contract_runs_in_the_users_project(project: Path, where: str, args: list[str]) -> None:
    argv = ["-p", "no:cacheprovider", "-q", *[a.format(project=project) for a in args]]
    code = f"import sys, pytest\nsys.exit(pytest.main({argv!r}))\n"
    proc = run(code, project.parent / where)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(rf"^{CONTRACT_TESTS} passed in ", proc.stdout, re.M), proc.stdout


@pytest.mark.parametrize(
    ("where", "prelude", "target"),
    [
        pytest.param("project", "", "mysoftmax.py", id="project-first"),
        pytest.param("elsewhere", "sys.path.append({project!r})\n", "mysoftmax", id="project-last"),
    ],
)
@pytest.mark.parametrize("isolate", [[], ["--no-isolate"]], ids=["isolated", "in-process"])
def test_the_command_runs_in_the_users_project(
    project: Path, where: str, prelude: str, target: str, isolate: list[str]
) -> None:
    argv = ["check", target, "--max-examples", "5", *isolate]
    code = (
        "import sys\n"
        + prelude.format(project=str(project))
        + "from softmax_verify.cli import main\n"
        + f"sys.exit(main({argv!r}))\n"
    )
    proc = run(code, project.parent / where)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    passed = 2 * (len(INVARIANTS) - 1)  # stage_gradients is skipped: no named stages
    assert f"{passed} passed, 0 failed, 0 errors, 2 skipped" in proc.stdout, proc.stdout
