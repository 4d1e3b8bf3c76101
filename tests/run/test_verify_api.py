"""``softmax_verify.verify`` on correct and buggy implementations, in every accepted convention.

Conventions: the forward returns ``y`` or ``(y, cache)``; the backward returns
``dx``, a mapping with ``"dx"``, or an object with attribute ``dx`` (a dataclass
or a NamedTuple); or there is no backward at all. Each is checked correct (no
failures at float64 and float32) and buggy (a relevant invariant fails), then the
notebook examples, the report's fields and the validation of verify's arguments.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, NamedTuple

import numpy as np
import pytest
from hypothesis import settings
from numpy.typing import NDArray

from softmax_verify import (
    INVARIANT_IDS,
    INVARIANTS,
    Report,
    Result,
    softmax,
    softmax_backward,
    staged_backward,
    staged_forward,
    verify,
)
from softmax_verify.core.options import Options

Array = NDArray[Any]
Forward = Callable[[Array], Any]
Backward = Callable[[Array, Any], Any]
Core = Callable[[Array, Array], Array]  # (dout, y) -> dx

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
BOTH = ("float64", "float32")
FORWARD_IDS = tuple(inv.id for inv in INVARIANTS if not inv.needs_backward)
BACKWARD_IDS = tuple(inv.id for inv in INVARIANTS if inv.needs_backward)
NOTEBOOK_FAILS = (
    "ones_upstream_gives_zero",
    "central_differences",
    "jacobian_symmetry",
    "stage_gradients",
)


def load_example(name: str) -> ModuleType:
    """Import examples/<name>.py by path (examples/ is not a package)."""
    spec = importlib.util.spec_from_file_location(f"examples_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def by_id(report: Report) -> dict[tuple[str, str], Result]:
    return {(r.invariant, r.dtype): r for r in report.results}


def assert_no_failures(report: Report) -> None:
    bad = [(r.invariant, r.dtype, r.status, r.message) for r in report.failures]
    assert not bad, bad
    assert report.passed


# --- the cores every convention wraps ------------------------------------------------------


def rows_softmax(x: Array) -> Array:
    return softmax(x, axis=1)


def rows_vjp(dout: Array, y: Array) -> Array:
    return softmax_backward(dout, y, axis=1)


def diagonal_vjp(dout: Array, y: Array) -> Array:
    """Only the Jacobian's diagonal: the classic wrong backward."""
    out: Array = y * (1 - y) * dout
    return out


def epsilon_softmax(x: Array) -> Array:
    """Normalizes by sum + 1e-3: rows no longer sum to one."""
    e = np.exp(x - x.max(axis=1, keepdims=True))
    out: Array = e / (e.sum(axis=1, keepdims=True) + 1e-3)
    return out


@dataclass(frozen=True)
class GradBox:
    dx: Array


class GradTuple(NamedTuple):
    dout: Array
    dx: Array


def y_and_dx(fwd: Forward, core: Core) -> tuple[Forward, Backward | None]:
    """forward -> y; backward(dout, y) -> dx."""

    def backward(dout: Array, y: Array) -> Array:
        return core(dout, y)

    return fwd, backward


def tuple_and_dx(fwd: Forward, core: Core) -> tuple[Forward, Backward | None]:
    """forward -> (y, {"probs": y}); backward(dout, cache) -> dx."""

    def forward(x: Array) -> tuple[Array, dict[str, Array]]:
        y = fwd(x)
        return y, {"probs": y}

    def backward(dout: Array, cache: Mapping[str, Array]) -> Array:
        return core(dout, cache["probs"])

    return forward, backward


def y_and_mapping(fwd: Forward, core: Core) -> tuple[Forward, Backward | None]:
    """forward -> y; backward -> {"dx": dx, ...} with another entry besides."""

    def backward(dout: Array, y: Array) -> dict[str, Array]:
        return {"dy": dout.copy(), "dx": core(dout, y)}

    return fwd, backward


def tuple_and_dataclass(fwd: Forward, core: Core) -> tuple[Forward, Backward | None]:
    """forward -> (y, y.copy()); backward -> a dataclass with .dx."""

    def forward(x: Array) -> tuple[Array, Array]:
        y = fwd(x)
        return y, y.copy()

    def backward(dout: Array, y: Array) -> GradBox:
        return GradBox(dx=core(dout, y))

    return forward, backward


def y_and_namedtuple(fwd: Forward, core: Core) -> tuple[Forward, Backward | None]:
    """forward -> y; backward -> a NamedTuple whose .dx is not its first field."""

    def backward(dout: Array, y: Array) -> GradTuple:
        return GradTuple(dout=dout.copy(), dx=core(dout, y))

    return fwd, backward


CONVENTIONS: dict[str, Callable[[Forward, Core], tuple[Forward, Backward | None]]] = {
    "y/dx": y_and_dx,
    "tuple/dx": tuple_and_dx,
    "y/mapping": y_and_mapping,
    "tuple/dataclass": tuple_and_dataclass,
    "y/namedtuple": y_and_namedtuple,
}


# --- correct implementations pass ----------------------------------------------------------


@pytest.mark.parametrize("convention", list(CONVENTIONS))
def test_correct_implementation_passes_in_every_convention(convention: str) -> None:
    forward, backward = CONVENTIONS[convention](rows_softmax, rows_vjp)
    report = verify(forward, backward, dtypes=BOTH, max_examples=6)
    assert_no_failures(report)
    results = by_id(report)
    assert set(results) == {(i, d) for i in INVARIANT_IDS for d in BOTH}
    for (inv, _dtype), result in results.items():
        if inv == "stage_gradients":  # these caches have no named stages to localize
            assert result.status == "skipped"
            assert "exps" in result.message or "named" in result.message
        else:
            assert result.status == "passed", result
            assert result.examples > 0


def test_forward_only_skips_backward_invariants_with_a_reason() -> None:
    report = verify(rows_softmax, dtypes=BOTH, max_examples=6)
    assert_no_failures(report)
    assert report.backward is None
    for result in report.results:
        if result.invariant in BACKWARD_IDS:
            assert result.status == "skipped", result
            assert result.message == "no backward given"
            assert result.examples == 0
        else:
            assert result.status == "passed", result


def test_package_staged_graph_passes_including_stage_gradients() -> None:
    """NamedTuple cache and NamedTuple gradients: stages are found by attribute."""
    report = verify(staged_forward, staged_backward, dtypes=BOTH, max_examples=5)
    assert_no_failures(report)
    assert all(r.status == "passed" for r in report.results)


# --- buggy implementations fail, naming the invariant --------------------------------------


@pytest.mark.parametrize("convention", list(CONVENTIONS))
def test_buggy_backward_fails_in_every_convention(convention: str) -> None:
    forward, backward = CONVENTIONS[convention](rows_softmax, diagonal_vjp)
    report = verify(
        forward,
        backward,
        dtypes=BOTH,
        invariants=["rows_sum_to_one", "ones_upstream_gives_zero", "backward_matches_reference"],
        max_examples=30,
    )
    assert not report.passed
    results = by_id(report)
    for dtype in BOTH:
        assert results["rows_sum_to_one", dtype].status == "passed"  # the forward is fine
        for inv in ("ones_upstream_gives_zero", "backward_matches_reference"):
            result = results[inv, dtype]
            assert result.status == "failed", result
            assert result.counterexample is not None
    assert {r.invariant for r in report.failures} == {
        "ones_upstream_gives_zero",
        "backward_matches_reference",
    }


@pytest.mark.parametrize("convention", list(CONVENTIONS))
def test_buggy_forward_fails_in_every_convention(convention: str) -> None:
    forward, backward = CONVENTIONS[convention](epsilon_softmax, rows_vjp)
    report = verify(
        forward,
        backward,
        dtypes=BOTH,
        invariants=["rows_sum_to_one", "matches_reference", "input_not_mutated"],
        max_examples=30,
    )
    results = by_id(report)
    for dtype in BOTH:
        assert results["rows_sum_to_one", dtype].status == "failed"
        assert results["matches_reference", dtype].status == "failed"
        assert results["input_not_mutated", dtype].status == "passed"
        assert "sum to 1" in results["rows_sum_to_one", dtype].message


def test_buggy_forward_only_fails() -> None:
    report = verify(epsilon_softmax, dtypes=BOTH, invariants=["rows_sum_to_one", "jacobian_psd"])
    results = by_id(report)
    for dtype in BOTH:
        assert results["rows_sum_to_one", dtype].status == "failed"
        assert results["jacobian_psd", dtype].status == "skipped"
    assert not report.passed


# --- the notebook examples -----------------------------------------------------------------


def test_notebook_buggy_fails_and_names_dexps_1() -> None:
    notebook = load_example("notebook_buggy")
    report = verify(
        notebook.softmax_forward,
        notebook.softmax_backward,
        dtypes=BOTH,
        invariants=NOTEBOOK_FAILS,
    )
    assert not report.passed
    results = by_id(report)
    assert set(results) == {(i, d) for i in NOTEBOOK_FAILS for d in BOTH}
    for (inv, dtype), result in results.items():
        assert result.status == "failed", (inv, dtype, result.status, result.message)
        assert result.examples > 0
        assert result.seconds >= 0
        assert result.message
        case = result.counterexample
        assert isinstance(case, dict)
        assert all(isinstance(v, np.ndarray) for v in case.values())
        assert case["x"].dtype == np.dtype(dtype)
        assert case["x"].ndim == 2
        assert case["x"].size <= 4, case  # shrunk: a row or two of a few entries
        if inv == "stage_gradients":
            assert result.first_wrong_stage == "dexps_1"
            assert "dexps_1" in result.message
            assert "broadcast" in result.message  # says what the stage should compute
        else:
            assert result.first_wrong_stage is None
    assert "first wrong stage: dexps_1" in report.to_text()


def test_notebook_buggy_forward_overflows() -> None:
    notebook = load_example("notebook_buggy")
    report = verify(
        notebook.softmax_forward,
        notebook.softmax_backward,
        invariants=["finite_for_finite_input", "matches_reference", "dtype_preserved"],
    )
    results = by_id(report)
    assert results["finite_for_finite_input", "float64"].status == "failed"
    assert results["matches_reference", "float64"].status == "failed"
    assert results["dtype_preserved", "float64"].status == "passed"
    case = results["finite_for_finite_input", "float64"].counterexample
    assert case is not None
    assert np.abs(case["x"]).max() > 700  # exp overflows in float64 beyond about 709.78


def test_notebook_fixed_passes_everything_including_stage_gradients() -> None:
    notebook = load_example("notebook_fixed")
    report = verify(
        notebook.softmax_forward, notebook.softmax_backward, dtypes=BOTH, max_examples=20
    )
    assert_no_failures(report)
    assert len(report.results) == 2 * len(INVARIANT_IDS)
    for result in report.results:
        assert result.status == "passed", result  # stage_gradients too: not skipped
        assert result.examples > 0
        assert result.counterexample is None
        assert result.first_wrong_stage is None


# --- the report ----------------------------------------------------------------------------


def test_report_fields_names_and_progress() -> None:
    seen: list[Result] = []
    report = verify(
        rows_softmax,
        rows_vjp,
        invariants=["rows_sum_to_one", "jacobian_psd"],
        max_examples=7,
        target="my softmax",
        progress=seen.append,
    )
    assert report.target == "my softmax"
    assert report.backward == "rows_vjp"
    assert report.profile == "ci"
    assert report.seed is None  # ci is derandomized: nothing to report
    assert seen == list(report.results)
    # Both dtypes by default (as the command and the contract), float32 first.
    assert [(r.invariant, r.dtype) for r in report.results] == [
        ("rows_sum_to_one", "float32"),
        ("rows_sum_to_one", "float64"),
        ("jacobian_psd", "float32"),
        ("jacobian_psd", "float64"),
    ]
    for result in report.results:
        assert result.status == "passed"
        assert result.examples == 7
        assert result.seconds > 0
        assert result.message == "held on 7 examples"
    assert verify(rows_softmax, invariants=["rows_sum_to_one"], max_examples=2).target == (
        "rows_softmax"
    )


def test_seed_is_drawn_reported_and_reproduces() -> None:
    notebook = load_example("notebook_buggy")

    def run(seed: int | None) -> Report:
        return verify(
            notebook.softmax_forward,
            notebook.softmax_backward,
            profile="dev",
            seed=seed,
            invariants=["jacobian_symmetry"],
            max_examples=20,
            dtypes=("float64",),
        )

    drawn = run(None)
    assert isinstance(drawn.seed, int)
    assert drawn.profile == "dev"
    first, second = run(drawn.seed), run(drawn.seed)
    assert first.seed == second.seed == drawn.seed
    (a,), (b,) = first.results, second.results
    assert a.status == b.status == "failed"
    assert a.counterexample is not None
    assert b.counterexample is not None
    assert a.counterexample.keys() == b.counterexample.keys()
    for key in a.counterexample:
        np.testing.assert_array_equal(a.counterexample[key], b.counterexample[key])


# --- argument validation -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"dtypes": "float64"}, TypeError, "dtypes"),
        ({"dtypes": ("int16",)}, TypeError, "dtypes"),
        ({"dtypes": ("int32",)}, TypeError, "dtypes"),
        ({"dtypes": ()}, ValueError, "dtypes"),
        ({"profile": "fast"}, ValueError, "profile"),
        ({"profile": None}, TypeError, "profile"),
        ({"max_examples": 0}, ValueError, "max_examples"),
        ({"max_examples": -5}, ValueError, "max_examples"),
        ({"max_examples": 2.5}, ValueError, "max_examples"),
        ({"max_examples": True}, ValueError, "max_examples"),
        ({"seed": -1}, ValueError, "seed"),
        ({"seed": True}, ValueError, "seed"),
        ({"seed": "42"}, ValueError, "seed"),
        ({"timeout": 0}, ValueError, "timeout"),
        ({"timeout": -1.0}, ValueError, "timeout"),
        ({"invariants": ["no_such_invariant"]}, ValueError, "invariant"),
    ],
    ids=lambda v: repr(v) if isinstance(v, dict) else "",
)
def test_verify_rejects_bad_arguments(
    kwargs: dict[str, Any], error: type[Exception], name: str
) -> None:
    with pytest.raises(error, match=name):
        verify(rows_softmax, rows_vjp, options=Options(**kwargs))


def test_verify_rejects_non_callables() -> None:
    not_callable: Any = np.zeros(3)
    with pytest.raises(TypeError, match="forward"):
        verify(not_callable)
    with pytest.raises(TypeError, match="backward"):
        verify(rows_softmax, not_callable)


def test_verify_accepts_any_registered_hypothesis_profile() -> None:
    """A project's own profile: its example count is used, our verdict settings on top."""
    settings.register_profile("a_users_own_profile", max_examples=3, derandomize=True)
    report = verify(rows_softmax, invariants=["rows_sum_to_one"], profile="a_users_own_profile")
    assert report.profile == "a_users_own_profile"
    assert [r.examples for r in report.results] == [3, 3]
    assert report
