"""The JSON report's exact schema, and strict JSON: shared by the tests of the command line
(tests/cli) and of the isolated run (tests/isolation)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BUGGY = "examples/notebook_buggy.py"
STATUSES = {"passed", "failed", "error", "skipped"}


def strict_json(text: str) -> Any:
    def reject(constant: str) -> Any:
        raise ValueError(f"non-standard JSON constant {constant}")

    return json.loads(text, parse_constant=reject)


# --- the JSON schema -----------------------------------------------------------------------

REPORT_KEYS = {
    "target",
    "backward",
    "profile",
    "seed",
    "passed",
    "results",
    "command",
    "diagnosis",
    "notes",
    "domain",
    "accumulate",
    "interpretation",
}
TARGET_KEYS = {
    "name",
    "kind",
    "forward",
    "backward",
    "grad",
    "grad_at",
    "layout",
    "notes",
    "autodiff",
    "arrays",
    "text",
}
RESULT_KEYS = {
    "invariant",
    "dtype",
    "status",
    "examples",
    "seconds",
    "message",
    "counterexample",
    "minimal",
    "first_wrong_stage",
    "location",
    "mismatch",
}
MISMATCH_KEYS = {
    "what",
    "count",
    "total",
    "max_abs_error",
    "max_rel_error",
    "worst_index",
    "actual",
    "expected",
    "tolerance",
}


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_array_json(value: object, where: str) -> None:
    """Nested lists of numbers, or a bare number; non-finite values only as strings."""
    if isinstance(value, list):
        for item in value:
            _check_array_json(item, where)
    elif isinstance(value, str):
        assert value in ("nan", "inf", "-inf"), f"{where}: unexpected string {value!r}"
    else:
        assert isinstance(value, (int, float)), where
        assert not isinstance(value, bool), where
        assert math.isfinite(value), where


def check_schema(doc: Any) -> None:
    """The exact report schema: key sets, types, and the allowed status values."""
    assert isinstance(doc, dict)
    assert set(doc) == REPORT_KEYS
    target = doc["target"]
    assert isinstance(target, dict)
    assert set(target) == TARGET_KEYS, set(target) ^ TARGET_KEYS
    assert all(isinstance(target[k], str) for k in ("name", "text"))
    assert all(target[k] is None or isinstance(target[k], str) for k in TARGET_KEYS - {"notes"})
    assert isinstance(target["notes"], list)
    assert doc["backward"] is None or isinstance(doc["backward"], str)
    assert isinstance(doc["profile"], str)
    assert doc["seed"] is None or _is_int(doc["seed"])
    assert isinstance(doc["passed"], bool)
    assert isinstance(doc["results"], list)
    assert isinstance(doc["diagnosis"], list)
    for entry in doc["diagnosis"]:
        assert set(entry) == {"id", "kind", "summary", "fix", "evidence"}
        assert entry["kind"] in ("formula", "region", "mutation", "model")
        assert all(isinstance(value, str) for value in entry.values())
        # The fix is "" where the evidence supports none (a region whose threshold does not).
        assert all(entry[k] for k in ("id", "kind", "summary", "evidence"))
    assert isinstance(doc["notes"], list)
    assert all(isinstance(n, str) for n in doc["notes"])
    for result in doc["results"]:
        assert isinstance(result, dict)
        assert set(result) == RESULT_KEYS, set(result) ^ RESULT_KEYS
        assert isinstance(result["invariant"], str)
        assert isinstance(result["dtype"], str)
        assert result["status"] in STATUSES
        assert _is_int(result["examples"])
        assert isinstance(result["seconds"], float)
        assert isinstance(result["message"], str)
        case = result["counterexample"]
        assert case is None or isinstance(case, dict)
        for name, value in (case or {}).items():
            assert isinstance(name, str)
            _check_array_json(value, f"{result['invariant']}.{name}")
        assert result["first_wrong_stage"] is None or isinstance(result["first_wrong_stage"], str)
        assert isinstance(result["minimal"], bool)
        assert result["location"] is None or isinstance(result["location"], str)
        mismatch = result["mismatch"]
        if mismatch is not None:
            assert set(mismatch) == MISMATCH_KEYS
            assert isinstance(mismatch["what"], str)
            assert _is_int(mismatch["count"])
            assert _is_int(mismatch["total"])
            assert 0 < mismatch["count"] <= mismatch["total"]
            assert all(_is_int(i) for i in mismatch["worst_index"])
            for key in ("max_abs_error", "max_rel_error", "actual", "expected", "tolerance"):
                _check_array_json(mismatch[key], f"{result['invariant']}.mismatch.{key}")
    assert doc["command"] is None or isinstance(doc["command"], str)
    assert doc["passed"] == all(r["status"] in ("passed", "skipped") for r in doc["results"])
