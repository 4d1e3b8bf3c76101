"""``SoftmaxContract``: subclassed here for correct code; run by pytester on the buggy notebook.

The subclasses in this module are collected by pytest like any user's: one test
per invariant and dtype, each a Hypothesis property under the active profile, and
they must pass. The notebook's buggy code is run in a separate pytest process
(pytester), where its expected tests must fail with the invariant and the same
minimal counterexample as ``softmax-verify check`` gives, and a forward-only
subclass must skip the backward tests.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Any

import pytest

from softmax_verify.bundled.reference import softmax, softmax_backward
from softmax_verify.bundled.staged import staged_backward, staged_forward
from softmax_verify.cli import main
from softmax_verify.invariants import INVARIANTS
from softmax_verify.testing import SoftmaxContract

pytest_plugins = ["pytester"]

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TEST_NAMES = [f"test_{inv.id}" for inv in INVARIANTS]
BACKWARD_TESTS = [f"test_{inv.id}" for inv in INVARIANTS if inv.needs_backward]
NOTEBOOK_FAILS = ("ones_upstream_gives_zero", "central_differences", "jacobian_symmetry")


def _contract(forward: Any, backward: Any) -> type[SoftmaxContract]:
    # Defined inside a function so pytest does not collect it a second time: the reference
    # and staged contracts themselves run in tests/invariants/test_invariants.py.
    class Contract(SoftmaxContract):
        pass

    Contract.forward = staticmethod(forward)
    Contract.backward = staticmethod(backward)
    return Contract


@pytest.mark.parametrize(
    ("forward", "backward"), [(softmax, softmax_backward), (staged_forward, staged_backward)]
)
def test_subclass_has_one_test_per_invariant(forward: Any, backward: Any) -> None:
    contract = _contract(forward, backward)
    names = [name for name in dir(contract) if name.startswith("test_")]
    assert sorted(names) == sorted(TEST_NAMES)
    for inv in INVARIANTS:
        test = getattr(contract, f"test_{inv.id}")
        assert callable(test)
        assert test.__doc__ == inv.doc  # the invariant's math shows in pytest's listing


def test_exclude_leaves_an_invariant_out_of_collection() -> None:
    class Partial(SoftmaxContract, exclude=("stage_gradients",)):
        forward = staticmethod(softmax)

    assert vars(Partial)["test_stage_gradients"] is None  # pytest collects only callables
    assert callable(inspect.getattr_static(Partial, "test_rows_sum_to_one"))
    with pytest.raises(ValueError, match="invariant must be one of"):

        class Wrong(SoftmaxContract, exclude=("rows_sum_to_two",)):
            pass


def test_contract_without_forward_says_so() -> None:
    class TestNothing(SoftmaxContract):
        pass

    with pytest.raises(TypeError, match=r"TestNothing\.forward must be set"):
        TestNothing.implementation()


GENERATED = """
import importlib.util

from softmax_verify.testing import SoftmaxContract


def load(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


buggy = load({buggy!r}, "notebook_buggy")
fixed = load({fixed!r}, "notebook_fixed")


class TestNotebookBuggy(SoftmaxContract):
    forward = staticmethod(buggy.softmax_forward)
    backward = staticmethod(buggy.softmax_backward)
    dtypes = ("float64",)


class TestForwardOnly(SoftmaxContract):
    forward = staticmethod(fixed.softmax_forward)
"""


def run_notebook_contract(pytester: pytest.Pytester) -> pytest.RunResult:
    pytester.makeconftest("import softmax_verify.run.profiles  # registers the ci profile\n")
    pytester.makepyfile(
        test_notebook=GENERATED.format(
            buggy=str(EXAMPLES / "notebook_buggy.py"), fixed=str(EXAMPLES / "notebook_fixed.py")
        )
    )
    # The buggy class's expected failures and one of its passing tests; the forward-only
    # class's backward tests and one forward test.
    buggy = " or ".join((*NOTEBOOK_FAILS, "dtype_preserved"))
    forward_only = " or ".join((*BACKWARD_TESTS, "rows_sum_to_one"))
    selected = f"(TestNotebookBuggy and ({buggy})) or (TestForwardOnly and ({forward_only}))"
    return pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--hypothesis-profile=ci", "-v", "-rfs", "-k", selected
    )


def failure_sections(output: str) -> dict[str, str]:
    """pytest's failure report, by test id (``TestNotebookBuggy.test_x[float64]``)."""
    parts = re.split(r"^_{3,} (\S+) _{3,}$", output, flags=re.M)
    # The last section runs into the summary, which starts with a line of "=".
    return {
        parts[i]: re.split(r"^=+ ", parts[i + 1], flags=re.M)[0]
        for i in range(1, len(parts) - 1, 2)
    }


def counterexample_lines(text: str) -> list[str]:
    return re.findall(r"minimal counterexample:\n((?:    .*\n)+)", text)


def test_buggy_notebook_fails_its_contract_with_minimal_counterexamples(
    pytester: pytest.Pytester,
) -> None:
    result = run_notebook_contract(pytester)
    output = result.stdout.str()
    # One test per invariant and dtype: the buggy class checks float64 only, the
    # forward-only class both dtypes (the default).
    result.assert_outcomes(
        failed=len(NOTEBOOK_FAILS), passed=1 + 2, skipped=2 * len(BACKWARD_TESTS)
    )
    for inv in NOTEBOOK_FAILS:
        assert re.search(
            rf"FAILED test_notebook\.py::TestNotebookBuggy::test_{inv}\[float64\]", output
        )
    result.stdout.fnmatch_lines(
        [
            "*::TestNotebookBuggy::test_dtype_preserved[[]float64[]] PASSED*",
            "*::TestForwardOnly::test_rows_sum_to_one[[]float32[]] PASSED*",
            "*::TestForwardOnly::test_rows_sum_to_one[[]float64[]] PASSED*",
            *(f"*::TestForwardOnly::{name}[[]float*[]] SKIPPED*" for name in BACKWARD_TESTS),
        ],
        consecutive=False,
    )
    sections = failure_sections(output)
    assert sorted(sections) == sorted(
        f"TestNotebookBuggy.test_{i}[float64]" for i in NOTEBOOK_FAILS
    )
    for inv in NOTEBOOK_FAILS:
        section = sections[f"TestNotebookBuggy.test_{inv}[float64]"]
        # The invariant, what was compared, and the shrunk input as numpy arrays.
        assert section.lstrip().startswith(f"{inv} (float64) failed: "), section
        assert "Mismatched elements:" in section
        assert len(counterexample_lines(section)) == 1, section
        assert "x = np.array(" in section
        # No frame of this package (or of Hypothesis), and no explain-phase annotations.
        assert not re.search(r"softmax_verify[/\\]\w+\.py", section), section
        assert "hypothesis" not in section.lower(), section
        assert "Explanation:" not in section
    assert "the gradient of an all-equal upstream is not zero" in output
    assert "backward disagrees with central differences of forward" in output
    assert "no backward set on the contract class" in output


def test_the_contract_shrinks_as_the_command_does(
    pytester: pytest.Pytester, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same bug, the same minimal counterexample: in the contract and in ``check``."""
    sections = failure_sections(run_notebook_contract(pytester).stdout.str())
    selection = [w for inv in NOTEBOOK_FAILS for w in ("--invariant", inv)]
    buggy = str(EXAMPLES / "notebook_buggy.py")
    code = main(["check", buggy, "--dtype", "float64", "--no-isolate", *selection])
    assert code == 1
    command = capsys.readouterr().out
    for inv in NOTEBOOK_FAILS:
        block = command.split(f"\nFAILED: {inv} (float64)\n", 1)[1].split("\nFAILED: ", 1)[0]
        from_command = counterexample_lines(block)
        assert len(from_command) == 1, block
        assert from_command == counterexample_lines(
            sections[f"TestNotebookBuggy.test_{inv}[float64]"]
        )
