"""The README's invariants table is the registry's, and each entry states its property once."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

import softmax_verify.invariants.readme as _docs
from softmax_verify.core.kinds import KINDS
from softmax_verify.invariants import (
    ALL_IDS,
    CROSS_ENTROPY_REGISTRY,
    NOTATION,
    NOTATION_CE,
    REGISTRY,
    SOFTMAX_REGISTRY,
    SUMMARIES,
    Invariant,
)

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
CROSS_ENTROPY = ROOT / "docs" / "cross_entropy.md"
REGENERATE = "python -m softmax_verify.invariants.readme"


def _block(text: str, first: str = _docs.TABLE_START, last: str = _docs.TABLE_END) -> str:
    start = text.index(first) + len(first)
    return text[start : text.index(last)].strip("\n")


def test_the_readme_table_is_what_the_registry_generates() -> None:
    readme = README.read_text(encoding="utf-8")
    assert _block(readme) == _docs.invariants_table(), (
        f"README.md's invariants table differs from the registry's summary/math fields; "
        f"regenerate it with: {REGENERATE} README.md"
    )


def test_the_cross_entropy_table_is_what_the_registry_generates() -> None:
    page = CROSS_ENTROPY.read_text(encoding="utf-8")
    block = _block(page, _docs.CE_TABLE_START, _docs.CE_TABLE_END)
    assert block == _docs.invariants_table(("cross_entropy",)), (
        f"docs/cross_entropy.md's invariants table differs from the registry; regenerate it "
        f"with: {REGENERATE} docs/cross_entropy.md"
    )
    assert _docs.TABLE_START not in page


def _ids(table: str) -> list[str]:
    rows = [line for line in table.splitlines() if line.startswith("| ")]
    return [row.split(" | ")[0].removeprefix("| ") for row in rows[1:]]  # after the header


def test_the_tables_have_one_row_per_id_of_their_kinds_in_report_order() -> None:
    softmax = _ids(_docs.invariants_table())
    loss = _ids(_docs.invariants_table(("cross_entropy",)))
    assert softmax == list(dict.fromkeys(inv.id for inv in SOFTMAX_REGISTRY))
    assert loss == [inv.id for inv in CROSS_ENTROPY_REGISTRY]
    assert set(softmax) | set(loss) == set(ALL_IDS)
    assert "loss_nonnegative" not in softmax
    assert "jacobian_psd" not in loss


def test_an_entry_that_changes_makes_the_readme_stale(monkeypatch: pytest.MonkeyPatch) -> None:
    readme = README.read_text(encoding="utf-8")
    first = REGISTRY[0]
    changed = dataclasses.replace(first, math=first.math + " (changed)")
    monkeypatch.setattr(_docs, "REGISTRY", (changed, *REGISTRY[1:]))
    stale = _docs.with_table(readme)
    assert stale != readme
    assert "(changed)" in _block(stale)
    assert stale.replace(" (changed)", "") == readme  # only the table was rewritten


def test_each_entry_states_its_property_in_one_printable_line() -> None:
    for inv in REGISTRY:
        for field in (inv.summary, inv.math):
            assert field, inv.id
            # Plain ASCII: `softmax-verify list` prints it on any terminal or encoding.
            assert field.isascii(), (inv.id, field)
            assert field.isprintable(), (inv.id, field)
            assert field == field.strip(), (inv.id, field)
        assert set(inv.kinds) <= set(KINDS), inv.id
    for line in (*NOTATION, *NOTATION_CE):
        assert line.isascii(), line
        assert line.isprintable(), line


def test_an_entry_takes_everything_after_its_id_by_keyword() -> None:
    first = REGISTRY[0]
    fields = (first.needs_backward, first.summary, first.math, first.check, first.build)
    with pytest.raises(TypeError, match="positional"):
        Invariant(first.id, *fields)  # type: ignore[call-arg]  # the call this test shows failing
    assert Invariant(
        first.id,
        needs_backward=first.needs_backward,
        summary=first.summary,
        math=first.math,
        check=first.check,
        build=first.build,
    ) == dataclasses.replace(first, kinds=("softmax",))


def test_the_summaries_mapping_is_derived_from_the_entries() -> None:
    softmax_entries = {inv.id: inv.summary for inv in REGISTRY if "softmax" in inv.kinds}
    assert softmax_entries == SUMMARIES


def test_with_table_needs_both_markers() -> None:
    with pytest.raises(ValueError, match="must hold the lines"):
        _docs.with_table("# a README without the markers\n")
    with pytest.raises(ValueError, match="must hold the lines"):
        _docs.with_table(f"{_docs.TABLE_END}\n{_docs.TABLE_START}\n")


def test_the_command_rewrites_a_file_and_prints_without_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    page = tmp_path / "page.md"
    page.write_text(f"# title\n{_docs.TABLE_START}\nold\n{_docs.TABLE_END}\nafter\n")
    assert _docs.main([str(page)]) == 0
    assert page.read_text() == (
        f"# title\n{_docs.TABLE_START}\n{_docs.invariants_table()}\n{_docs.TABLE_END}\nafter\n"
    )
    assert _docs.main([]) == 0
    both = _docs.invariants_table() + "\n\n" + _docs.invariants_table(("cross_entropy",))
    assert capsys.readouterr().out == both + "\n"
    assert _docs.main(["a", "b"]) == 2
    assert "usage" in capsys.readouterr().err
