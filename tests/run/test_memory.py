"""Shapes whose cases cannot be held are refused before the run, at every entry point, and
a MemoryError of the verifier's own during a run is reported as the verifier's, not as an
error of the code under test.

``run.memory.check_memory`` takes the memory available as an argument, and the entry
points ask ``run.memory.available_memory``, replaced here: no test depends on the
machine's memory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import cli
from numpy.typing import NDArray

import softmax_verify.invariants._forward as forward_invariants
import softmax_verify.run.memory as memory
from softmax_verify import Domain, softmax, verify
from softmax_verify.run.memory import (
    CHILD_AT_DTYPE,
    LOSS_COUNTS,
    VERIFIER_AT_DTYPE,
    VERIFIER_FLOAT64,
    MemoryShortage,
    available_memory,
    bytes_per_entry,
    check_memory,
)
from softmax_verify.testing import SoftmaxContract

F64, F32, F16 = np.dtype(np.float64), np.dtype(np.float32), np.dtype(np.float16)
HUGE = Domain(rows=(100_000, 100_000), cols=(100_000, 100_000))
ROOT = Path(__file__).resolve().parents[2]
FIXED = ROOT / "examples" / "notebook_fixed.py"


def test_an_entry_costs_the_arrays_the_run_holds() -> None:
    """float64 working arrays of the verifier, and the verifier's and child's at the dtype."""
    assert (VERIFIER_FLOAT64, VERIFIER_AT_DTYPE, CHILD_AT_DTYPE) == (20, 12, 12)
    assert bytes_per_entry(F64) == 20 * 8 + 24 * 8 == 352
    assert bytes_per_entry(F32) == 20 * 8 + 24 * 4 == 256
    assert bytes_per_entry(F16) == 20 * 8 + 24 * 2 == 208


def test_a_cross_entropy_entry_costs_its_label_rows_too() -> None:
    """The loss kind's counts (measured with probability rows: 352 and 288 bytes)."""
    assert LOSS_COUNTS == (28, 10, 16)
    assert bytes_per_entry(F64, "cross_entropy") == 28 * 8 + 26 * 8 == 432
    assert bytes_per_entry(F32, "cross_entropy") == 28 * 8 + 26 * 4 == 328
    domain = Domain(rows=(3000, 3000), cols=(5000, 5000))
    softmax_need = 3000 * 5000 * bytes_per_entry(F64)
    check_memory(domain, [[F64]], available=softmax_need)
    with pytest.raises(MemoryShortage) as caught:
        check_memory(domain, [[F64]], kind="cross_entropy", available=softmax_need)
    assert "432 bytes an entry" in str(caught.value)


@pytest.mark.parametrize("dtype", [F64, F32, F16], ids=lambda d: d.name)
def test_a_case_just_under_the_memory_is_accepted_just_over_refused(dtype: np.dtype[Any]) -> None:
    domain = Domain(rows=(3000, 3000), cols=(5000, 5000))
    need = 3000 * 5000 * bytes_per_entry(dtype)
    check_memory(domain, [[dtype]], available=need)  # exactly enough
    check_memory(domain, [[dtype]], available=need + 1)
    with pytest.raises(MemoryShortage) as caught:
        check_memory(domain, [[dtype]], available=need - 1)
    assert (caught.value.need, caught.value.available) == (need, need - 1)
    assert caught.value.shape == (3000, 5000)
    # One more row or column than fits is refused too.
    wider = Domain(rows=(3000, 3000), cols=(5000, 5001))
    with pytest.raises(MemoryShortage):
        check_memory(wider, [[dtype]], available=need)


def test_one_lane_needs_its_costliest_dtype_and_lanes_add_up() -> None:
    domain = Domain(rows=(1000, 1000), cols=(1000, 1000))
    f64, f32 = 10**6 * bytes_per_entry(F64), 10**6 * bytes_per_entry(F32)
    check_memory(domain, [[F32, F64]], available=f64)  # one after the other
    check_memory(domain, [[F64], [F32]], available=f64 + f32)  # side by side
    with pytest.raises(MemoryShortage, match=r"at float64 and float32 side by side \(--jobs\)"):
        check_memory(domain, [[F64], [F32]], available=f64 + f32 - 1)


def test_the_message_names_the_declaration_the_case_and_the_figures() -> None:
    with pytest.raises(MemoryShortage) as caught:
        check_memory(HUGE, [[F64]], available=8 << 30)
    assert str(caught.value) == (
        "domain: cases of up to 100000 x 100000 entries; checking one at float64 takes about "
        "3.2 TiB (352 bytes an entry: the input, the reference, the outputs, the perturbed "
        "copies of central differences, the child's copies), more than the 8.0 GiB of memory "
        "available: declare fewer rows or columns"
    )
    assert isinstance(caught.value, ValueError)


def test_no_check_when_the_memory_cannot_be_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory, "available_memory", lambda: None)
    check_memory(HUGE, [[F64]])


def test_the_default_shapes_fit_any_machine_that_runs_python() -> None:
    """The default domain's largest case: 8192 columns of 4 rows (2**15 entries), 11 MiB."""
    check_memory(Domain(), [[F64], [F32]], available=(352 + 256) << 15)


def test_the_memory_available_is_read_from_the_system() -> None:
    found = available_memory()
    if Path("/proc/meminfo").exists():
        assert found is not None
        assert found > 0


def test_a_cgroup_limit_leaves_its_room(tmp_path: Path) -> None:
    limit, usage = tmp_path / "memory.max", tmp_path / "memory.current"
    limit.write_text("1073741824\n")
    usage.write_text("73741824\n")
    assert memory._room(limit, usage) == 1_000_000_000
    limit.write_text("max\n")
    assert memory._room(limit, usage) is None  # no limit
    limit.write_text(f"{(1 << 63) - 4096}\n")  # cgroup v1's "no limit"
    assert memory._room(limit, usage) is None
    assert memory._room(tmp_path / "missing", usage) is None


# --- the entry points ---------------------------------------------------------------------


@pytest.fixture
def machine(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Sets the memory the entry points see: ``machine(bytes)``."""

    def set_available(nbytes: int) -> None:
        monkeypatch.setattr(memory, "available_memory", lambda: nbytes)

    return set_available


@pytest.mark.usefixtures("in_repo_root")
def test_the_command_refuses_shapes_that_cannot_be_held(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The issue's command: exit 2, one line naming the options and the figures."""
    code, out, err = cli(
        capsys, "check", str(FIXED), "--rows", "100000:100000", "--cols", "100000:100000"
    )
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert "Traceback" not in err
    assert err.startswith(
        "softmax-verify: error: --rows 100000:100000 --cols 100000:100000: cases of up to "
        "100000 x 100000 entries; checking one at float64"
    )
    assert "TiB" in err
    assert "of memory available" in err


@pytest.mark.usefixtures("in_repo_root")
@pytest.mark.parametrize("jobs", ["1", "2"])
def test_the_command_near_the_bound(
    capsys: pytest.CaptureFixture[str], machine: Any, jobs: str
) -> None:
    """Just enough memory: it runs; a byte less: a usage error. Two lanes need both dtypes'
    memory, one lane its costliest dtype's."""
    shape = ("--rows", "4:4", "--cols", "8:8", "--cols-multiple-of", "8")
    argv = ("check", str(FIXED), *shape, "--invariant", "rows_sum_to_one", "--jobs", jobs)
    need = 32 * (bytes_per_entry(F64) + (bytes_per_entry(F32) if jobs == "2" else 0))
    machine(need)
    code, out, err = cli(capsys, *argv)
    assert code == 0, err
    assert "rows_sum_to_one" in out
    machine(need - 1)
    code, out, err = cli(capsys, *argv)
    assert code == 2
    assert out == ""
    assert err.startswith(
        "softmax-verify: error: --rows 4:4 --cols 8:8 --cols-multiple-of 8: cases of up to "
        "4 x 8 entries"
    )


def test_verify_refuses_shapes_that_cannot_be_held(machine: Any) -> None:
    with pytest.raises(ValueError, match=r"^domain: cases of up to 100000 x 100000 entries"):
        verify(softmax, domain=HUGE)
    small = Domain(rows=(4, 4), cols=(8, 8))
    machine(32 * bytes_per_entry(F64) - 1)
    with pytest.raises(MemoryShortage, match=r"^domain: cases of up to 4 x 8 entries"):
        verify(softmax, domain=small, dtypes=("float64",), invariants=["rows_sum_to_one"])
    machine(32 * bytes_per_entry(F64))
    report = verify(softmax, domain=small, dtypes=("float64",), invariants=["rows_sum_to_one"])
    assert report.passed


@pytest.mark.usefixtures("in_repo_root")
@pytest.mark.parametrize("jobs", ["1", "2"])
def test_the_command_near_the_bound_for_cross_entropy(
    capsys: pytest.CaptureFixture[str], machine: Any, jobs: str
) -> None:
    """The loss kind's own cost, at the plan (one lane) and at the lanes (two)."""
    shape = ("--rows", "4:4", "--cols", "8:8", "--cols-multiple-of", "8")
    invariant = ("--invariant", "matches_reference", "--jobs", jobs)
    argv = ("check", "--kind", "cross_entropy", *shape, *invariant)
    need = 32 * bytes_per_entry(F64, "cross_entropy")
    need += 32 * bytes_per_entry(F32, "cross_entropy") if jobs == "2" else 0
    machine(need)
    code, out, err = cli(capsys, *argv)
    assert code == 0, err
    machine(need - 1)
    code, out, err = cli(capsys, *argv)
    assert code == 2
    assert out == ""
    assert "432 bytes an entry" in err


def test_the_contract_fails_clearly_on_shapes_that_cannot_be_held() -> None:
    class TestHuge(SoftmaxContract):
        forward = staticmethod(softmax)
        domain = HUGE

    with pytest.raises(pytest.fail.Exception) as caught:
        TestHuge().test_rows_sum_to_one("float32")  # type: ignore[attr-defined]  # generated
    assert str(caught.value).startswith(
        "TestHuge.domain: cases of up to 100000 x 100000 entries; checking one at float32 "
        "takes about 2.3 TiB"
    )


def test_the_contract_near_the_bound(machine: Any) -> None:
    class TestSmall(SoftmaxContract):
        forward = staticmethod(softmax)
        domain = Domain(rows=(4, 4), cols=(8, 8))

    machine(32 * bytes_per_entry(F32) - 1)
    with pytest.raises(pytest.fail.Exception, match=r"^TestSmall\.domain: cases of up to 4 x 8"):
        TestSmall().test_rows_sum_to_one("float32")  # type: ignore[attr-defined]  # generated
    machine(32 * bytes_per_entry(F32))
    TestSmall().test_rows_sum_to_one("float32")  # type: ignore[attr-defined]  # generated


# --- a MemoryError during the run ---------------------------------------------------------


def test_the_verifiers_own_memory_error_is_not_the_codes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Memory taken by others after the check: the reference cannot allocate. The error
    says it is the verifier's, not an error of the code under test."""

    def no_memory(x: NDArray[Any]) -> NDArray[Any]:
        raise MemoryError("Unable to allocate 74.5 GiB for an array with shape (100000, 100000)")

    monkeypatch.setattr(forward_invariants, "exact", no_memory)
    report = verify(softmax, dtypes=("float64",), invariants=["matches_reference"])
    (result,) = report.results
    assert result.status == "error"
    assert result.message.startswith(
        "the verifier ran out of memory for its own arrays (MemoryError: Unable to allocate "
        "74.5 GiB"
    )
    assert "not an error of the code under test" in result.message


def test_the_codes_own_memory_error_stays_the_codes() -> None:
    def greedy(x: NDArray[Any]) -> NDArray[Any]:
        raise MemoryError("Unable to allocate 1 TiB")

    report = verify(greedy, dtypes=("float64",), invariants=["matches_reference"])
    (result,) = report.results
    assert result.status == "error"
    assert "raised MemoryError: Unable to allocate 1 TiB" in result.message
    assert "the verifier ran out of memory" not in result.message
