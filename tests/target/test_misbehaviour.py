"""Code under test that misbehaves instead of computing a wrong number.

Raising, returning the wrong type, shape or dtype, NaN, hanging, writing to its
inputs: each becomes a result with status "error" (or "failed" when the values
are simply wrong) and a reason naming what went wrong, and every other selected
invariant still runs.
"""

from __future__ import annotations

import inspect
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from bad_impls import mutating_backward, mutating_forward
from numpy.typing import NDArray

from softmax_verify import Report, Result, softmax, softmax_backward, verify
from softmax_verify.core.errors import ImplementationError
from softmax_verify.core.implementation import BackwardCall
from softmax_verify.core.options import Options
from softmax_verify.target.local import LocalImplementation

Array = NDArray[Any]

FORWARD_SET = ("rows_sum_to_one", "matches_reference")
BACKWARD_SET = ("ones_upstream_gives_zero", "backward_matches_reference")


def rows_softmax(x: Array) -> Array:
    return softmax(x, axis=1)


def rows_vjp(dout: Array, y: Array) -> Array:
    return softmax_backward(dout, y, axis=1)


def line_of(func: Callable[..., Any], marker: str) -> int:
    """The line number in this file of the first line of ``func`` containing ``marker``."""
    lines, start = inspect.getsourcelines(func)
    for offset, text in enumerate(lines):
        if marker in text:
            return start + offset
    raise AssertionError(f"{marker!r} not in {func.__name__}")


def run(
    forward: Callable[..., Any],
    backward: Callable[..., Any] | None = None,
    invariants: Sequence[str] = FORWARD_SET + BACKWARD_SET,
    **kwargs: Any,
) -> dict[str, Result]:
    report = verify(
        forward, backward, invariants=invariants, max_examples=10, options=Options(**kwargs)
    )
    results = {r.invariant: r for r in report.results}
    assert list(results) == list(invariants)  # every selected invariant ran and has a result
    return results


def assert_errors(results: dict[str, Result], names: Sequence[str], *fragments: str) -> None:
    for name in names:
        result = results[name]
        assert result.status == "error", (name, result.status, result.message)
        for fragment in fragments:
            assert fragment in result.message, (name, result.message)
        assert result.examples > 0


def assert_passed(results: dict[str, Result], names: Sequence[str]) -> None:
    for name in names:
        assert results[name].status == "passed", (name, results[name].message)


# --- forwards that misbehave ---------------------------------------------------------------


def raising_forward(x: Array) -> Array:
    raise ValueError("shapes do not line up")  # RAISE-HERE


def none_forward(x: Array) -> None:
    return None


def list_forward(x: Array) -> list[list[float]]:
    out: list[list[float]] = rows_softmax(x).tolist()
    return out


def transposed_forward(x: Array) -> Array:
    out: Array = rows_softmax(x).T[:, :1]  # (D, 1) instead of (N, D)
    return out


def int_forward(x: Array) -> Array:
    return rows_softmax(x).astype(np.int64)


def triple_forward(x: Array) -> tuple[Array, Array, Array]:
    y = rows_softmax(x)
    return y, y, x  # (y, cache, extra): not the (y, cache) pair


def nan_forward(x: Array) -> Array:
    return np.full_like(x, np.nan)


@pytest.mark.parametrize(
    ("forward", "fragments"),
    [
        (raising_forward, ("forward raised ValueError", "shapes do not line up")),
        (none_forward, ("forward returned None",)),
        (list_forward, ("forward returned list", "numpy array")),
        (transposed_forward, ("forward returned y of shape", "expected")),
        (int_forward, ("dtype int64", "floating")),
        (triple_forward, ("forward returned tuple",)),
    ],
    ids=["raises", "none", "list", "wrong-shape", "int-dtype", "tuple-of-three"],
)
def test_misbehaving_forward_is_an_error_for_every_invariant(
    forward: Callable[..., Any], fragments: tuple[str, ...]
) -> None:
    results = run(forward, rows_vjp)
    assert_errors(results, FORWARD_SET + BACKWARD_SET, *fragments)


def test_nan_forward_fails_rather_than_errors() -> None:
    results = run(nan_forward, invariants=("finite_for_finite_input", *FORWARD_SET))
    for name in ("finite_for_finite_input", *FORWARD_SET):
        assert results[name].status == "failed", results[name]
    assert "not finite" in results["finite_for_finite_input"].message
    assert "nan" in results["finite_for_finite_input"].message


def test_error_location_points_at_the_users_line() -> None:
    report = verify(
        raising_forward, invariants=["rows_sum_to_one"], max_examples=5, dtypes=["float64"]
    )
    (result,) = report.results
    assert result.status == "error"
    line = line_of(raising_forward, "RAISE-HERE")
    assert result.location == f"{__file__}:{line} in raising_forward"
    assert f"at {result.location}" in report.to_text()


def helper_that_reshapes(x: Array) -> Array:
    return np.reshape(x, (-1, 7, 3))  # RESHAPE-HERE


def forward_calling_numpy_badly(x: Array) -> Array:
    return rows_softmax(helper_that_reshapes(x))


def test_error_location_skips_numpy_frames_and_names_the_innermost_user_frame() -> None:
    impl = LocalImplementation(forward_calling_numpy_badly)
    with pytest.raises(ImplementationError) as info:
        impl.forward(np.zeros((2, 2)))
    assert info.value.role == "forward"
    assert "raised ValueError" in info.value.reason
    line = line_of(helper_that_reshapes, "RESHAPE-HERE")
    assert info.value.location == f"{__file__}:{line} in helper_that_reshapes"
    assert info.value.location in str(info.value)


# --- backwards that misbehave: the forward invariants still pass ---------------------------


def raising_backward(dout: Array, y: Array) -> Array:
    raise ZeroDivisionError("dsexps")  # BACKWARD-RAISE


def none_backward(dout: Array, y: Array) -> None:
    return None


def no_dx_backward(dout: Array, y: Array) -> dict[str, Array]:
    return {"dexps_0": dout, "dX": rows_vjp(dout, y)}


def wrong_shape_backward(dout: Array, y: Array) -> Array:
    out: Array = rows_vjp(dout, y).sum(axis=1, keepdims=True)
    return out


def int_backward(dout: Array, y: Array) -> Array:
    return rows_vjp(dout, y).astype(np.int32)


@dataclass
class ListGrad:
    dx: list[float]


def list_dx_backward(dout: Array, y: Array) -> ListGrad:
    return ListGrad(dx=rows_vjp(dout, y).ravel().tolist())


def nan_backward(dout: Array, y: Array) -> Array:
    return np.full_like(dout, np.nan)


@pytest.mark.parametrize(
    ("backward", "fragments"),
    [
        (raising_backward, ("backward raised ZeroDivisionError", "dsexps")),
        (none_backward, ("backward returned None",)),
        (no_dx_backward, ("without key 'dx'",)),
        (wrong_shape_backward, ("backward returned dx of shape",)),
        (int_backward, ("dx of dtype int32",)),
        (list_dx_backward, ("backward returned list for dx",)),
    ],
    ids=["raises", "none", "mapping-without-dx", "wrong-shape", "int-dtype", "list-dx"],
)
def test_misbehaving_backward_errors_while_forward_invariants_pass(
    backward: Callable[..., Any], fragments: tuple[str, ...]
) -> None:
    results = run(rows_softmax, backward)
    assert_passed(results, FORWARD_SET)
    assert_errors(results, BACKWARD_SET, *fragments)


def test_backward_location_points_at_the_users_line() -> None:
    (result,) = verify(
        rows_softmax,
        raising_backward,
        invariants=["jacobian_psd"],
        max_examples=5,
        dtypes=["float64"],
    ).results
    line = line_of(raising_backward, "BACKWARD-RAISE")
    assert result.location == f"{__file__}:{line} in raising_backward"


def test_nan_backward_fails_while_forward_invariants_pass() -> None:
    results = run(rows_softmax, nan_backward)
    assert_passed(results, FORWARD_SET)
    for name in BACKWARD_SET:
        assert results[name].status == "failed", results[name]


# --- writing to inputs ---------------------------------------------------------------------


def cache_mutating_backward(dout: Array, y: Array) -> Array:
    dx = rows_vjp(dout, y)
    y[...] = 0.0  # clobbers the forward's output it was handed as the cache
    return dx


@pytest.mark.parametrize(
    ("forward", "backward", "what"),
    [
        (mutating_forward, rows_vjp, "forward(x) wrote to its input x"),
        (rows_softmax, mutating_backward, "backward wrote to its input dout"),
        (rows_softmax, cache_mutating_backward, "backward wrote to the cache"),
    ],
    ids=["forward-x", "backward-dout", "backward-cache"],
)
def test_mutating_inputs_fails_input_not_mutated_only(
    forward: Callable[..., Any], backward: Callable[..., Any], what: str
) -> None:
    """The code gets copies: the mutation is reported, and the values are still judged right."""
    results = run(forward, backward, invariants=("input_not_mutated", *FORWARD_SET, *BACKWARD_SET))
    assert results["input_not_mutated"].status == "failed"
    assert what in results["input_not_mutated"].message
    assert_passed(results, FORWARD_SET + BACKWARD_SET)


def test_a_written_cache_is_seen_by_backward_and_by_a_watched_handed_over_call() -> None:
    """The gradient checks hand their arrays over (``handed_over``) and ask for the cache to
    be watched only when they use it again; a cache written to is reported then, and by
    the plain backward always (arrays of odd sizes and mixed dtypes)."""
    rng = np.random.default_rng(0)
    y32 = rows_softmax(rng.standard_normal((3, 7))).astype(np.float32)
    y64 = rows_softmax(rng.standard_normal((3, 7)))

    def backward(dout: Array, cache: dict[str, Array]) -> Array:
        return rows_vjp(dout, cache["y64"])

    def writing_backward(dout: Array, cache: dict[str, Array]) -> Array:
        dx = rows_vjp(dout, cache["y64"])
        cache["y32"][1, 3] = 0.5
        return dx

    dout = rng.standard_normal((3, 7))
    impl = LocalImplementation(rows_softmax, backward, timeout=None)
    writer = LocalImplementation(rows_softmax, writing_backward, timeout=None)
    assert not impl.backward(dout, {"y32": y32.copy(), "y64": y64}).mutated_cache
    assert writer.backward(dout, {"y32": y32.copy(), "y64": y64}).mutated_cache
    for watch in (True, False):
        cache = {"y32": y32.copy(), "y64": y64}
        call = writer.handed_over("backward", dout.copy(), cache, watch_cache=watch)
        assert isinstance(call, BackwardCall)
        assert call.mutated_cache is watch
        assert not call.mutated_dout  # handed over: not looked for


# --- hanging -------------------------------------------------------------------------------


def looping_forward(x: Array) -> Array:
    while True:
        pass


def sleeping_forward(x: Array) -> Array:
    time.sleep(60)
    return rows_softmax(x)


def sleeping_backward(dout: Array, y: Array) -> Array:
    time.sleep(60)
    return rows_vjp(dout, y)


@pytest.mark.parametrize("forward", [looping_forward, sleeping_forward], ids=["loop", "sleep"])
def test_hanging_forward_times_out(forward: Callable[..., Any]) -> None:
    start = time.perf_counter()
    results = run(forward, rows_vjp, invariants=FORWARD_SET, timeout=0.5)
    assert_errors(results, FORWARD_SET, "forward did not return within 0.5 s")
    # One overrun per invariant is the verdict: the runner never waits on a second call.
    assert time.perf_counter() - start < 10
    for result in results.values():
        assert result.counterexample is not None
        assert result.minimal is False  # the case it overran on: the search stops there


def test_hanging_backward_times_out_while_forward_invariants_pass() -> None:
    results = run(rows_softmax, sleeping_backward, timeout=0.5)
    assert_passed(results, FORWARD_SET)
    assert_errors(results, BACKWARD_SET, "backward did not return within 0.5 s")


def test_hang_off_the_main_thread_falls_back_to_a_worker_thread() -> None:
    """No SIGALRM off the main thread: the call runs in a worker that is abandoned."""
    release = threading.Event()

    def waiting_forward(x: Array) -> Array:
        release.wait(60)  # released below, so the abandoned worker ends with the test
        return rows_softmax(x)

    reports: list[Report] = []
    runner = threading.Thread(
        target=lambda: reports.append(
            verify(
                waiting_forward,
                invariants=["rows_sum_to_one", "dtype_preserved"],
                max_examples=5,
                options=Options(timeout=0.5),
            )
        )
    )
    try:
        runner.start()
        runner.join(30)
        assert not runner.is_alive(), "verify did not return from a non-main thread"
    finally:
        release.set()
    (report,) = reports
    for result in report.results:
        assert result.status == "error"
        assert "forward did not return within 0.5 s" in result.message


def test_worker_thread_reports_exceptions_with_location() -> None:
    reports: list[Report] = []
    runner = threading.Thread(
        target=lambda: reports.append(
            verify(
                raising_forward,
                invariants=["rows_sum_to_one"],
                max_examples=5,
                dtypes=["float64"],
                options=Options(timeout=5),
            )
        )
    )
    runner.start()
    runner.join(30)
    (report,) = reports
    (result,) = report.results
    assert result.status == "error"
    assert "forward raised ValueError" in result.message
    assert result.location is not None
    assert result.location.startswith(f"{__file__}:{line_of(raising_forward, 'RAISE-HERE')}")


# --- other misbehaviour --------------------------------------------------------------------


def exiting_forward(x: Array) -> Array:
    raise SystemExit(3)


def test_system_exit_in_the_code_is_an_error_not_the_end_of_the_run() -> None:
    results = run(exiting_forward, invariants=FORWARD_SET)
    assert_errors(results, FORWARD_SET, "forward raised SystemExit")


def test_a_failure_that_does_not_reproduce_is_reported_as_nondeterministic() -> None:
    """Wrong on its first call only: Hypothesis cannot reproduce the failure; the report
    says "nondeterministic" and gives the input it failed on, not a FlakyFailure."""
    calls = [0]

    def flaky_forward(x: Array) -> Array:
        calls[0] += 1
        y = rows_softmax(x)
        return y * 0.5 if calls[0] == 1 else y

    (result,) = verify(
        flaky_forward, invariants=["rows_sum_to_one"], max_examples=20, dtypes=["float64"]
    ).results
    assert result.status == "failed"
    assert result.message.startswith("nondeterministic: failed on this input (")
    assert "Flaky" not in result.message
    assert result.counterexample is not None
    assert result.minimal is False
    x = result.counterexample["x"]
    assert not np.allclose(flaky_forward(x).sum(axis=1) * 0.5, 1.0)  # the case it failed on
