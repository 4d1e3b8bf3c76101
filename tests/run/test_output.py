"""``--output FILE``: the report written whole by a rename, with the permission bits
``open(FILE, "w")`` would give, and no temporary file left whatever happens."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from softmax_verify.run.output import current_umask, output_problem, write_atomic


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_file_gets_the_umasks_mode(tmp_path: Path) -> None:
    target = tmp_path / "report.xml"
    before = os.umask(0o027)
    try:
        write_atomic(target, b"<xml/>\n")
        plain = tmp_path / "plain"
        plain.write_bytes(b"")  # what open(FILE, "w") gives under the same umask
    finally:
        os.umask(before)
    assert target.read_bytes() == b"<xml/>\n"
    assert mode(target) == mode(plain) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain", "report.xml"]


def test_an_existing_file_keeps_its_mode_and_a_reader_keeps_the_old_one(tmp_path: Path) -> None:
    target = tmp_path / "report.json"
    target.write_text("old\n")
    target.chmod(0o604)
    with target.open() as held:  # opened during the run: the old file, whole
        write_atomic(target, b"new\n")
        assert held.read() == "old\n"
    assert target.read_text() == "new\n"
    assert mode(target) == 0o604


def test_a_symlink_is_replaced_not_written_through(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_text("keep\n")
    link = tmp_path / "report.json"
    link.symlink_to(elsewhere)
    write_atomic(link, b"report\n")
    assert not link.is_symlink()
    assert link.read_text() == "report\n"
    assert elsewhere.read_text() == "keep\n"


def test_a_failed_write_leaves_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "report.json"
    target.mkdir()  # os.replace cannot put a file over a directory
    with pytest.raises(IsADirectoryError):
        write_atomic(target, b"x")
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_the_umask_is_read_without_changing_it() -> None:
    before = os.umask(0o037)
    try:
        assert current_umask() == 0o037
        assert os.umask(0o037) == 0o037  # unchanged by the read
    finally:
        os.umask(before)


def test_what_cannot_be_written_is_named(tmp_path: Path) -> None:
    assert output_problem(str(tmp_path / "report.json")) is None
    assert output_problem(str(tmp_path)) == "is a directory"
    assert output_problem(str(tmp_path / "no" / "report.json")) == (
        f"no such directory: {tmp_path / 'no'}"
    )
