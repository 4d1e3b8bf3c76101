"""``Domain``: validated on construction, parsed from the command line, stated in reports."""

from __future__ import annotations

import json
from typing import ClassVar

import numpy as np
import pytest

from softmax_verify import Domain, verify
from softmax_verify.bundled.reference import softmax
from softmax_verify.cli import main
from softmax_verify.core.options import Options
from softmax_verify.testing import SoftmaxContract


def _forward(x: np.ndarray) -> np.ndarray:
    return softmax(x, axis=1)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"rows": (0, 4)}, ValueError, "rows"),
        ({"rows": (5, 4)}, ValueError, "rows"),
        ({"cols": (1, 2, 3)}, TypeError, "cols"),
        ({"cols": (1.0, 8)}, TypeError, "cols"),
        ({"cols": [1, 8]}, TypeError, "cols"),
        ({"cols_multiple_of": 0}, ValueError, "cols_multiple_of"),
        ({"cols_multiple_of": True}, TypeError, "cols_multiple_of"),
        ({"cols": (5, 7), "cols_multiple_of": 8}, ValueError, "no multiple"),
    ],
)
def test_bad_domains_raise_naming_the_field(
    kwargs: dict[str, object], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        Domain(**kwargs)  # type: ignore[arg-type]  # wrong types are the point


@pytest.mark.parametrize(
    ("rows", "cols", "expected"),
    [
        ("2:8", "128:4096", Domain(rows=(2, 8), cols=(128, 4096))),
        (None, "256", Domain(cols=(256, 256))),
        (None, "100:", Domain(cols=(100, 8192))),
        (":4", None, Domain(rows=(1, 4))),
    ],
)
def test_parse(rows: str | None, cols: str | None, expected: Domain) -> None:
    assert Domain.parse(rows, cols) == expected


@pytest.mark.parametrize("text", ["a:b", "0:4", "9:3", "1:2:3"])
def test_parse_rejects_naming_the_option(text: str) -> None:
    with pytest.raises(ValueError, match="--cols"):
        Domain.parse(None, text)


def test_report_states_the_domain() -> None:
    domain = Domain(rows=(1, 2), cols=(8, 64), cols_multiple_of=8)
    report = verify(_forward, domain=domain, invariants=["matches_reference"], max_examples=5)
    assert report.passed
    assert "shapes: rows 1..2, cols 8..64, multiple of 8 (declared)" in report.to_text()
    assert report.to_dict()["domain"] == domain.describe()
    unrestricted = verify(_forward, invariants=["matches_reference"], max_examples=5)
    assert "shapes: every shape" in unrestricted.to_text()


def test_verify_rejects_a_bad_domain_and_model() -> None:
    with pytest.raises(TypeError, match="domain"):
        verify(_forward, domain=(1, 2))  # type: ignore[arg-type]  # the point
    with pytest.raises(ValueError, match="accumulate"):
        verify(_forward, options=Options(accumulate="float8"))  # type: ignore[arg-type]  # the point


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["--cols", "x:y"], "--cols"),
        (["--rows", "0:3"], "--rows"),
        (["--cols", "5:7", "--cols-multiple-of", "8"], "no multiple"),
    ],
)
def test_cli_domain_errors_exit_2(
    argv: list[str], match: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check", *argv, "--no-isolate"]) == 2
    assert match in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "match"),
    [(["--cols-multiple-of", "0"], "--cols-multiple-of"), (["--accumulate", "x"], "--accumulate")],
)
def test_cli_option_errors_exit_2(
    argv: list[str], match: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["check", *argv])
    assert exited.value.code == 2
    assert match in capsys.readouterr().err


def test_cli_states_the_domain_and_reproduces_it(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["check", "--rows", "1:3", "--cols", "128:512", "--cols-multiple-of", "128"]
    argv += ["--invariant", "matches_reference", "--max-examples", "5"]
    assert main(argv) == 0
    assert "shapes: rows 1..3, cols 128..512, multiple of 128 (declared)" in capsys.readouterr().out
    assert main([*argv, "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert "--rows 1:3 --cols 128:512 --cols-multiple-of 128" in data["command"]
    assert data["domain"] == "rows 1..3, cols 128..512, multiple of 128 (declared)"


def _blocked_only(x: np.ndarray) -> np.ndarray:
    """A kernel for whole blocks of 128 columns only: anything else is refused."""
    if x.shape[1] % 128:
        raise ValueError(f"{x.shape[1]} columns: only multiples of 128 are supported")
    return softmax(x, axis=1)


class _BlockedContract(SoftmaxContract):
    forward = staticmethod(_blocked_only)
    dtypes = ("float32",)
    domain: ClassVar[Domain | None] = Domain(cols=(128, 1024), cols_multiple_of=128)


def test_contract_draws_only_the_declared_domain() -> None:
    _BlockedContract().test_matches_reference("float32")  # type: ignore[attr-defined]  # set per invariant


def test_contract_without_the_domain_finds_the_refused_shapes() -> None:
    class Undeclared(_BlockedContract):
        domain = None

    with pytest.raises(pytest.fail.Exception, match=r"forward raised ValueError: .* columns: only"):
        Undeclared().test_matches_reference("float32")  # type: ignore[attr-defined]  # set per invariant
