"""What a user's CI runs: the example GitHub workflow, the pre-commit hook, the package metadata.

The workflow's and the hook's commands are read from their files and run as the
CI would run them (a fresh process in the checkout), on the fixed and the buggy
notebook. examples/README.md shows the workflow verbatim, and the hook's configuration.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / "examples" / "github-workflow.yml"
HOOKS = ROOT / ".pre-commit-hooks.yaml"
EXAMPLES = ROOT / "examples" / "README.md"
REPOSITORY = "https://github.com/softmax-verify/softmax-verify"
# Keeps each run short; everything else is the file's own command.
QUICK = ["--max-examples", "5"]


def run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HYPOTHESIS_")}
    # The console script, as the workflow and pre-commit find it on PATH.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run(
        argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False
    )


def workflow_check_command() -> list[str]:
    runs = re.findall(r"^\s*- run: (.+)$", WORKFLOW.read_text(), re.M)
    (command,) = [r for r in runs if r.startswith("softmax-verify ")]
    return shlex.split(command)


def test_the_workflow_has_the_steps_a_job_needs() -> None:
    text = WORKFLOW.read_text()
    for line in (
        "on: [push, pull_request]",
        "    runs-on: ubuntu-latest",
        "      - uses: actions/checkout@v4",
        "      - uses: actions/setup-python@v5",
        "      - run: pip install softmax-verify",
    ):
        assert f"\n{line}\n" in text, line
    assert "\t" not in text  # YAML forbids tabs for indentation


def test_the_workflow_check_passes_on_correct_code_and_annotates_a_bug() -> None:
    argv = workflow_check_command()
    assert argv[:2] == ["softmax-verify", "check"]
    assert argv[-2:] == ["--format", "github"]
    good = run([*argv, *QUICK])
    assert good.returncode == 0, good.stdout + good.stderr
    assert "\n::notice title=softmax-verify " in good.stdout
    assert "::error" not in good.stdout
    buggy = [a.replace("notebook_fixed", "notebook_buggy") for a in argv]
    bad = run([*buggy, "--invariant", "stage_gradients"])
    assert bad.returncode == 1, bad.stdout + bad.stderr
    annotations = [line for line in bad.stdout.splitlines() if line.startswith("::error ")]
    assert len(annotations) == 2  # float32 and float64
    for annotation in annotations:
        assert re.match(r"::error file=examples/notebook_buggy\.py,line=\d+,title=", annotation)


def test_the_examples_show_the_workflow_verbatim() -> None:
    examples = EXAMPLES.read_text()
    body = WORKFLOW.read_text()
    assert f"```yaml\n{body}```" in examples


def hook() -> dict[str, str]:
    """The hook's scalar keys (the file holds one hook, in block style)."""
    text = HOOKS.read_text()
    assert text.count("\n- id: ") == 1
    entries = re.findall(r"^(?:- |  )(\w+): (.+)$", text, re.M)
    return dict(entries)


def test_the_pre_commit_hook_runs_the_check_on_the_file_it_is_given() -> None:
    spec = hook()
    assert spec["id"] == "softmax-verify"
    assert spec["language"] == "python"  # pre-commit installs this package for it
    assert spec["pass_filenames"] == "false"  # the TARGET comes from the user's args
    entry = shlex.split(spec["entry"])
    assert entry == ["softmax-verify", "check"]
    good = run([*entry, "examples/notebook_fixed.py", *QUICK])
    assert good.returncode == 0, good.stdout + good.stderr
    bad = run([*entry, "examples/notebook_buggy.py", "--invariant", "stage_gradients"])
    assert bad.returncode == 1, bad.stdout + bad.stderr
    # The example configuration names this hook and this repository.
    examples = EXAMPLES.read_text()
    assert f"- repo: {REPOSITORY}" in examples
    assert "- id: softmax-verify" in examples


def test_the_package_metadata_speaks_to_users() -> None:
    meta = metadata.metadata("softmax-verify")
    assert meta["License-Expression"] == "MIT"
    assert "LICENSE" in (meta.get_all("License-File") or [])
    urls = dict(u.split(", ", 1) for u in meta.get_all("Project-URL") or [])
    assert urls["Source"] == REPOSITORY
    assert all(url.startswith(REPOSITORY) for url in urls.values())
    assert "pytest" in (meta.get_all("Provides-Extra") or [])
    requires = metadata.requires("softmax-verify") or []
    assert any(r.startswith("pytest") and 'extra == "pytest"' in r for r in requires)
    assert (ROOT / "LICENSE").read_text().startswith("MIT License\n")


def test_every_package_folder_is_in_the_distribution() -> None:
    # pyproject.toml names its packages (strategies/ installs under another name), so a
    # sub-package missing from that list is missing from the wheel, and the import fails.
    pyproject = (ROOT / "pyproject.toml").read_text()
    listing = re.search(r"^packages = \[(.*?)\]", pyproject, re.MULTILINE | re.DOTALL)
    assert listing, "pyproject.toml's [tool.setuptools] packages list was not found"
    listed = set(re.findall(r'"([\w.]+)"', listing.group(1)))
    folders = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for init in (ROOT / "softmax_verify").rglob("__init__.py")
    }
    assert folders - listed == set(), f"add to pyproject.toml's packages: {folders - listed}"


def test_the_readme_installs_first_with_links_that_work_on_the_package_index() -> None:
    readme = (ROOT / "README.md").read_text()
    start = readme.index("\n## Install\n")
    assert start < readme.index("\n## From a checkout")  # near the top, before the dev setup
    section = readme[start : readme.index("\n## ", start + 1)]
    assert "pip install softmax-verify" in section
    assert "float32 and float64" in section
    # The package index shows this file without the repository: relative links break there.
    links = re.findall(r"\]\(([^)]+)\)", readme)
    assert links
    for link in links:
        assert link.startswith("https://"), link
