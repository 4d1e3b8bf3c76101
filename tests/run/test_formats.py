"""Report in Python and notebooks (bool, repr, HTML) and in CI (JUnit XML, GitHub annotations).

The JUnit document is read the way a CI system reads it: parsed with the
standard library, its counts checked against its testcases. Reports here are
built by hand (every status, every optional field) and, once each, from a real
run on the buggy notebook.
"""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

import softmax_verify as sv
from softmax_verify.core.compare import Mismatch
from softmax_verify.core.result import Result
from softmax_verify.diagnosis import Diagnosis
from softmax_verify.run.formats import to_github, to_junit
from softmax_verify.run.report import Report, VerificationFailed, to_html

ROOT = Path(__file__).resolve().parents[2]
BUGGY = "examples/notebook_buggy.py"

MISMATCH = Mismatch("backward(c * ones)", 2, 2, 0.25, float("inf"), (0, 0), 0.25, 0.0, 1.5e-6)
FAILED = Result(
    "ones_upstream_gives_zero",
    "float32",
    "failed",
    15,
    0.2,
    "the gradient of an all-equal upstream is not zero",
    counterexample={"x": np.array([[0.0, -0.0]], np.float32), "dout": np.ones((1, 2), np.float32)},
    mismatch=MISMATCH,
)
ERRORED = Result(
    "rows_sum_to_one",
    "float64",
    "error",
    1,
    0.01,
    "forward raised ValueError: <bad> & 'quoted' \x00 100%, a:b",
    counterexample={"x": np.zeros((1, 3))},
    location="mypkg/layers.py:42 in softmax_forward",
)
PASSED = Result("dtype_preserved", "float64", "passed", 100, 0.4, "held on 100 examples")
SKIPPED = Result("jacobian_psd", "float64", "skipped", 0, 0.0, "no backward given")


def report(*results: Result, target: str = "mypkg.layers:softmax_forward") -> Report:
    return Report(target, None, "ci", None, results, command="softmax-verify check x")


# --- bool, repr, raise_for_failures --------------------------------------------------------


def test_a_report_is_true_exactly_when_it_passed() -> None:
    assert report(PASSED, SKIPPED)
    assert not report(PASSED, FAILED)
    assert not report(ERRORED)
    assert report()  # nothing ran, nothing failed: as ``passed`` says
    for r in (report(PASSED), report(PASSED, FAILED)):
        assert bool(r) is r.passed


def test_assert_verify_fails_on_a_wrong_softmax() -> None:
    def doubled(x: np.ndarray) -> np.ndarray:
        return 2 * sv.softmax(x)

    bad = sv.verify(doubled, invariants=["rows_sum_to_one"], max_examples=5)
    with pytest.raises(AssertionError) as info:
        assert bad, repr(bad)
    assert "rows_sum_to_one[float32]" in str(info.value)
    good = sv.verify(sv.softmax, invariants=["rows_sum_to_one"], max_examples=5)
    assert good


def test_raise_for_failures_carries_the_text_report() -> None:
    report(PASSED, SKIPPED).raise_for_failures()  # no exception
    failing = report(PASSED, FAILED)
    with pytest.raises(VerificationFailed) as info:
        failing.raise_for_failures()
    assert isinstance(info.value, AssertionError)
    assert info.value.report is failing
    assert str(info.value) == failing.to_text()
    assert "FAILED: ones_upstream_gives_zero (float32)" in str(info.value)


def test_repr_is_one_short_line_naming_the_failures() -> None:
    text = repr(report(PASSED, FAILED, ERRORED, SKIPPED))
    assert text == (
        "<Report 'mypkg.layers:softmax_forward' FAILED: ones_upstream_gives_zero[float32], "
        "rows_sum_to_one[float64] (1 passed, 1 failed, 1 error, 1 skipped)>"
    )
    assert repr(report(PASSED)) == "<Report 'mypkg.layers:softmax_forward' passed (1 passed)>"
    many = report(*(FAILED for _ in range(5)))
    assert repr(many).count("ones_upstream_gives_zero") == 3
    assert ", ...)" not in repr(many)
    assert ", ... (" in repr(many)
    assert len(repr(many)) < 200


# --- HTML ----------------------------------------------------------------------------------


class _Collect(HTMLParser):
    """Text and tags of an HTML fragment, checking every opened tag is closed."""

    VOID = frozenset({"br"})

    def __init__(self) -> None:
        super().__init__()
        self.open: list[str] = []
        self.tags: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag not in self.VOID:
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.open[-1:] == [tag], (self.open, tag)
        self.open.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse_html(fragment: str) -> _Collect:
    parser = _Collect()
    parser.feed(fragment)
    parser.close()
    assert parser.open == []
    return parser


def test_html_has_a_results_table_and_each_failure_with_its_counterexample() -> None:
    r = report(PASSED, FAILED, ERRORED, SKIPPED)
    fragment = r._repr_html_()
    assert fragment == to_html(r)
    parsed = parse_html(fragment)
    text = "".join(parsed.text)
    assert parsed.tags.count("tr") == 1 + 4  # header and one row per result
    assert parsed.tags.count("details") == 2  # one section per failure or error
    assert "FAILED" in text
    assert "ones_upstream_gives_zero" in text
    assert "x = np.array([[ 0., -0.]], dtype=np.float32)" in text
    assert "Mismatched elements: 2 / 2 (100%)" in text
    assert "at mypkg/layers.py:42 in softmax_forward" in text
    # The implementation's message is text, not markup.
    assert "<bad> & 'quoted'" in text
    assert "<bad>" not in fragment
    assert "reproduce: softmax-verify check x" in text.replace("\n", " ")


def test_html_shows_the_report_diagnosis_after_the_failures() -> None:
    found = Diagnosis(
        "diagonal_only",
        "formula",
        "the backward keeps only the Jacobian's diagonal",
        "dx = y * (dout - (dout * y).sum(axis=-1, keepdims=True))",
        "on 3 probes ...",
        explains=("central_differences",),
    )
    diagnosed = dataclasses.replace(report(FAILED), diagnosis=(found,))
    text = "".join(parse_html(to_html(diagnosed)).text)
    assert "diagonal_only" in text
    assert "the backward keeps only the Jacobian's diagonal" in text
    assert "dx = y * (dout - (dout * y).sum(axis=-1, keepdims=True))" in text
    # A failure with nothing proven says so rather than guess; a pass has no section.
    assert "no known pattern" in "".join(parse_html(to_html(report(FAILED))).text)
    assert "ul" not in parse_html(to_html(report(PASSED))).tags


def test_html_of_a_real_failing_run_is_readable() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("notebook_buggy_html", ROOT / BUGGY)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    r = sv.verify(module.softmax_forward, module.softmax_backward, invariants=["stage_gradients"])
    text = "".join(parse_html(r._repr_html_()).text)
    assert "first wrong stage: dexps_1" in text
    assert "minimal counterexample:" in text


# --- JUnit XML -----------------------------------------------------------------------------


def check_junit(document: str, r: Report) -> ET.Element:
    """Parse as a CI system does; the counts must agree with the testcases and the report."""
    root = ET.fromstring(document)
    assert root.tag == "testsuites"
    (suite,) = root.findall("testsuite")
    cases = suite.findall("testcase")
    assert len(cases) == len(r.results) == int(suite.get("tests", "-1"))
    for name, child in (("failures", "failure"), ("errors", "error"), ("skipped", "skipped")):
        found = sum(1 for c in cases if c.find(child) is not None)
        assert int(suite.get(name, "-1")) == found == int(root.get(name, "-1"))
    for case, result in zip(cases, r.results, strict=True):
        assert case.get("name") == f"{result.invariant}[{result.dtype}]"
        assert float(case.get("time", "nan")) == pytest.approx(result.seconds, abs=1e-3)
        assert len(list(case)) == (0 if result.status == "passed" else 1)
    assert float(suite.get("time", "nan")) >= 0
    return suite


def test_junit_counts_and_failure_bodies() -> None:
    r = report(PASSED, FAILED, ERRORED, SKIPPED)
    suite = check_junit(to_junit(r), r)
    failure = suite.find("testcase/failure")
    assert failure is not None
    assert failure.get("message") == FAILED.message
    assert "x = np.array([[ 0., -0.]], dtype=np.float32)" in (failure.text or "")
    assert "Worst at index (0, 0)" in (failure.text or "")
    error = suite.find("testcase/error")
    assert error is not None
    # The message attribute is one line with control characters dropped (as in the text
    # report); the body keeps the whole message, with characters XML cannot carry replaced.
    assert error.get("message") == ERRORED.message.replace("\x00", "")
    assert ERRORED.message.replace("\x00", "\ufffd") in (error.text or "")
    assert "at mypkg/layers.py:42 in softmax_forward" in (error.text or "")
    skipped = suite.find("testcase/skipped")
    assert skipped is not None
    assert skipped.get("message") == "no backward given"
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["profile"] == "ci"
    assert props["seed"] == "derandomized"


def test_junit_of_a_passing_report() -> None:
    r = report(PASSED, SKIPPED)
    check_junit(to_junit(r), r)


# --- GitHub annotations --------------------------------------------------------------------


def test_github_annotations_at_the_users_file_and_line() -> None:
    r = report(PASSED, FAILED, ERRORED)
    lines = to_github(r).splitlines()
    assert lines[0] == r.to_text().splitlines()[0]  # the text report comes first, for the log
    annotations = [line for line in lines if line.startswith("::")]
    assert len(annotations) == 2
    failed, errored = annotations
    # No location and a module target: no file, the message on one line.
    assert failed.startswith("::error title=softmax-verify%3A ones_upstream_gives_zero (float32)")
    assert "%0Aminimal counterexample:%0A" in failed
    # The location's file and line; the title and message escaped as GitHub requires.
    assert errored.startswith("::error file=mypkg/layers.py,line=42,title=softmax-verify%3A ")
    message = errored.split("::", 2)[2]
    assert "100%25%2C a:b" not in message
    assert "100%25, a:b" in message


def test_github_falls_back_to_the_target_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    r = report(FAILED, target=f"{BUGGY}:softmax_forward")
    (annotation,) = [line for line in to_github(r).splitlines() if line.startswith("::")]
    assert annotation.startswith(f"::error file={BUGGY},title=")
    stage = Result(
        "stage_gradients",
        "float64",
        "failed",
        3,
        0.1,
        "first wrong stage: dexps_1",
        location=f"{ROOT / BUGGY}:51: grads['dexps_1'] = ...",
    )
    (annotation,) = [
        line for line in to_github(report(stage)).splitlines() if line.startswith("::")
    ]
    assert annotation.startswith(f"::error file={BUGGY},line=51,title=")  # made relative


def test_github_of_a_passing_report_is_a_notice() -> None:
    annotations = [line for line in to_github(report(PASSED)).splitlines() if "::" in line]
    assert annotations == [
        "::notice title=softmax-verify mypkg.layers%3Asoftmax_forward::"
        "1 passed, 0 failed, 0 errors, 0 skipped"
    ]
