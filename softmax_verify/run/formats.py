"""More renderings of a Report, for CI: JUnit XML and GitHub annotations.

- ``to_junit``: one ``<testcase>`` per (invariant, dtype), named ``invariant[dtype]``,
  with a ``<failure>``, ``<error>`` or ``<skipped>`` element carrying the message and
  the counterexample, in the shape CI systems read (Jenkins, GitLab, GitHub actions).
- ``to_github``: the text report followed by one workflow command
  (``::error file=...,line=...,title=...::message``) per failure, at the user's file
  and line when the location is known, else at the target file.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET

from softmax_verify.core.messages import one_line
from softmax_verify.core.result import Result
from softmax_verify.run.report import Report
from softmax_verify.run.text import failure_text, status_counts, summary_line

__all__ = ["to_github", "to_junit"]

#: Characters XML 1.0 cannot carry, even escaped (a message may quote any byte).
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
#: ``Result.location``: ``path:line``, ``path:line in function`` or ``path:line: source``.
_LOCATION = re.compile(r"^(?P<path>.+?):(?P<line>\d+)(?:$| in |: )")


# --- JUnit XML ----------------------------------------------------------------------------


def _xml_text(text: str) -> str:
    return _NOT_XML.sub("\ufffd", text)


def to_junit(report: Report) -> str:
    """JUnit XML: one testsuite for the target, one testcase per (invariant, dtype)."""
    counts = status_counts(report.results)
    total_time = f"{sum(r.seconds for r in report.results):.3f}"
    suite_attrs = {
        "name": _xml_text(f"softmax-verify: {report.target}"),
        "tests": str(len(report.results)),
        "failures": str(counts["failed"]),
        "errors": str(counts["error"]),
        "skipped": str(counts["skipped"]),
        "time": total_time,
    }
    root = ET.Element("testsuites", {**suite_attrs, "name": "softmax-verify"})
    suite = ET.SubElement(root, "testsuite", suite_attrs)
    properties = ET.SubElement(suite, "properties")
    seed = str(report.seed) if report.seed is not None else "derandomized"
    for name, value in (
        ("target", report.target),
        ("backward", report.backward or ""),
        ("profile", report.profile),
        ("seed", seed),
        ("command", report.command),
    ):
        ET.SubElement(properties, "property", {"name": name, "value": _xml_text(value)})
    for r in report.results:
        case = ET.SubElement(
            suite,
            "testcase",
            {
                "classname": _xml_text(f"softmax-verify.{report.target}"),
                "name": _xml_text(f"{r.invariant}[{r.dtype}]"),
                "time": f"{r.seconds:.3f}",
            },
        )
        if r.status == "skipped":
            ET.SubElement(case, "skipped", {"message": _xml_text(r.message)})
        elif r.status in ("failed", "error"):
            tag, kind = (
                ("failure", "InvariantViolation")
                if r.status == "failed"
                else ("error", "ImplementationError")
            )
            first = one_line(r.message) or r.status
            element = ET.SubElement(case, tag, {"message": _xml_text(first), "type": kind})
            element.text = _xml_text(failure_text(r))
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True)


# --- GitHub workflow commands -------------------------------------------------------------


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def _relative(path: str) -> str:
    """``path`` relative to the working directory (the checkout, in a workflow) when inside."""
    absolute = os.path.abspath(path)
    here = os.getcwd()
    if absolute.startswith(here + os.sep):
        return os.path.relpath(absolute, here).replace(os.sep, "/")
    return path


def _target_file(target: str) -> str | None:
    """The FILE.py a TARGET names (``FILE.py`` or ``FILE.py:ATTR``), if it names one."""
    path = target if target.endswith(".py") else target.rpartition(":")[0]
    return path if path.endswith(".py") and os.path.isfile(path) else None


def _annotation(report: Report, r: Result) -> str:
    where: dict[str, str] = {}
    match = _LOCATION.match(r.location) if r.location else None
    if match is not None:
        where = {"file": _relative(match["path"]), "line": match["line"]}
    else:
        path = _target_file(report.target)
        if path is not None:
            where = {"file": _relative(path)}
    title = f"softmax-verify: {r.invariant} ({r.dtype}) {r.status}"
    props = ",".join(f"{k}={_escape_property(v)}" for k, v in {**where, "title": title}.items())
    return f"::error {props}::{_escape_data(failure_text(r))}"


def to_github(report: Report) -> str:
    """The text report for the log, then one ``::error`` annotation per failure or error.

    A run that passed adds a ``::notice`` with the counts, so the summary shows it ran.
    """
    lines = [report.to_text(), ""]
    lines += [_annotation(report, r) for r in report.failures]
    if report.passed:
        title = _escape_property(f"softmax-verify {report.target}")
        lines.append(f"::notice title={title}::{_escape_data(summary_line(report.results))}")
    return "\n".join(lines)
