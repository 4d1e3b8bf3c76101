"""The diagnosis record and its text form, shared by the report and the pytest contract."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["Diagnosis", "Kind", "describe", "from_dict", "to_dict"]

Kind = Literal["formula", "region", "mutation", "model"]


@dataclass(frozen=True)
class Diagnosis:
    """One proven finding about an implementation that failed.

    ``id`` is a stable catalogue id (``diagonal_only``, ``only_when_n_gt_1``, ...),
    ``summary`` one plain sentence saying what the code does, ``fix`` the correct
    formula ("" where the evidence supports none), ``evidence`` the measurements that
    prove it. ``kind``: a known-wrong ``formula``, a ``region`` where a failure shows, a
    ``mutation`` of an input, or another accumulation ``model`` that accepts a
    half-precision failure. ``explains`` lists the
    invariant ids whose failures this finding accounts for (regions explain none:
    they qualify a failure rather than name its mistake).
    """

    id: str
    kind: Kind
    summary: str
    fix: str
    evidence: str
    explains: tuple[str, ...] = ()


def to_dict(diagnosis: Diagnosis) -> dict[str, Any]:
    """The JSON form: ``{"id", "kind", "summary", "fix", "evidence"}``."""
    return {
        "id": diagnosis.id,
        "kind": diagnosis.kind,
        "summary": diagnosis.summary,
        "fix": diagnosis.fix,
        "evidence": diagnosis.evidence,
    }


def from_dict(data: dict[str, Any]) -> Diagnosis:
    """A Diagnosis from ``to_dict``'s form plus, if present, ``explains``."""
    return Diagnosis(
        id=str(data["id"]),
        kind=data["kind"],
        summary=str(data["summary"]),
        fix=str(data["fix"]),
        evidence=str(data["evidence"]),
        explains=tuple(data.get("explains", ())),
    )


def describe(diagnoses: Sequence[Diagnosis], failed: Iterable[tuple[str, str]]) -> list[str]:
    """The text report's "Diagnosis" section for the ``(invariant, dtype)`` pairs that failed.

    Failures that no finding explains are listed as "no known pattern": the tool says
    so rather than guess.
    """
    failed = list(failed)
    if not failed:
        return []
    lines = ["Diagnosis"]
    for d in diagnoses:
        lines.append(f"  {d.id} ({d.kind}): {d.summary}")
        if d.fix:
            lines.append(f"    fix: {d.fix}")
        lines.append(f"    evidence: {d.evidence}")
    explained = {inv for d in diagnoses for inv in d.explains}
    unexplained = [f"{inv} ({dtype})" for inv, dtype in failed if inv not in explained]
    if unexplained:
        lines.append("  no known pattern for: " + ", ".join(unexplained))
    return lines
