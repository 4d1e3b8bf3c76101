"""Tests of ``softmax_verify.gradcheck``: no false alarms, no missed bugs, clear errors.

* Correct implementations pass: the reference, the staged graph (its backward
  returning an object with ``.dx`` and, wrapped, a mapping with ``"dx"``) and the
  torch adapter, in float32 and float64, from 1x1 to 64x64 for the full Jacobian
  and up to 512x512 for the directional check; and, as a property, the reference
  on adversarial logits (ties, masked and dominant entries, far rows, subnormal
  magnitudes) with adversarial upstreams.
* Wrong backwards are rejected, with the worst entry reported (index, both values,
  its tolerance): a zero backward, twice the answer, the Jacobian diagonal only,
  and the notebook's bug, at 32x32 and 64x64 (full Jacobian) and 1024x1024
  (directional, float64).
* Regressions: logits near a power of two or below the step (the directional
  check used to refuse them: ``x +/- h u`` was not exact), and large logits in
  float32 (a step scaled by ``|x|`` made the tolerance so loose that a doubled
  backward passed).
* Bad arguments raise ValueError or TypeError naming the argument.

No timing assertions: ``make bench`` measures speed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import bad_impls
import numpy as np
import pytest
from conftest import require
from hypothesis import given
from hypothesis import strategies as st
from numpy.typing import NDArray

from softmax_verify.bundled.reference import softmax, softmax_backward
from softmax_verify.bundled.staged import StagedCache, staged_backward, staged_forward
from softmax_verify.gradcheck import (
    GradcheckResult,
    directional_check,
    full_jacobian_check,
    numerical_vjp_check,
)
from softmax_verify.strategies import logits, upstreams, well_conditioned_logits
from softmax_verify.target.frameworks import adapter

Array = NDArray[Any]
Pair = tuple[Callable[..., Any], Callable[..., Any]]

DTYPES = (np.float32, np.float64)
dtype_params = pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)

FULL_SHAPES = [(1, 1), (1, 2), (2, 1), (3, 5), (8, 8), (5, 33), (32, 32), (64, 64)]
DIRECTIONAL_SHAPES = [(1, 1), (2, 3), (7, 64), (64, 64), (256, 128), (512, 512)]


# --- implementations ---------------------------------------------------------------------


def staged_mapping_backward(dout: Array, cache: StagedCache) -> Mapping[str, Array]:
    """The staged backward in the mapping convention: ``{"dx": ..., "dexps_0": ...}``."""
    return staged_backward(dout, cache)._asdict()


def zero_backward(dout: Array, y: Array) -> Array:
    return np.zeros_like(dout)


def torch_pair() -> Pair:
    require("torch")
    forward, backward = adapter("torch")
    assert backward is not None
    return forward, backward


CORRECT: dict[str, Callable[[], Pair]] = {
    "reference": lambda: (softmax, softmax_backward),
    "staged_object": lambda: (staged_forward, staged_backward),
    "staged_mapping": lambda: (staged_forward, staged_mapping_backward),
    "torch": torch_pair,
}

WRONG: dict[str, Pair] = {
    "zeros": (bad_impls.stable, zero_backward),
    "twice": (bad_impls.stable, bad_impls.double_backward),
    "diagonal_only": (bad_impls.stable, bad_impls.diagonal_backward),
    "notebook": (bad_impls.notebook_forward, bad_impls.notebook_backward),
}

correct_params = pytest.mark.parametrize("impl", list(CORRECT))
wrong_params = pytest.mark.parametrize("impl", list(WRONG))


def random_logits(shape: tuple[int, int], dtype: Any, seed: int = 0, scale: float = 2.0) -> Array:
    out: Array = (np.random.default_rng(seed).standard_normal(shape) * scale).astype(dtype)
    return out


def random_upstream(shape: tuple[int, int], dtype: Any, seed: int = 1) -> Array:
    out: Array = np.random.default_rng(seed).standard_normal(shape).astype(dtype)
    return out


def assert_passed(result: GradcheckResult, shape: tuple[int, ...]) -> None:
    assert result.passed, result.mismatch.describe() if result.mismatch else result
    assert result.mismatch is None
    assert len(result.worst) == len(shape)
    assert all(0 <= i < s for i, s in zip(result.worst, shape, strict=True))
    assert abs(result.expected - result.actual) <= result.tolerance
    assert result.tolerance > 0


def assert_rejected(result: GradcheckResult, shape: tuple[int, ...]) -> None:
    """Failed, and the worst entry is reported consistently in the result and its mismatch."""
    assert not result.passed
    mismatch = result.mismatch
    assert mismatch is not None
    assert len(result.worst) == len(shape)
    assert all(0 <= i < s for i, s in zip(result.worst, shape, strict=True))
    assert mismatch.worst_index == result.worst
    assert abs(result.expected - result.actual) > result.tolerance
    assert (mismatch.actual, mismatch.expected) == (result.actual, result.expected)
    assert mismatch.tolerance == result.tolerance
    assert 1 <= mismatch.count <= mismatch.total == int(np.prod(shape))
    assert mismatch.max_abs_error >= abs(result.expected - result.actual)
    text = mismatch.describe()
    assert str(result.worst) in text
    assert "not equal within the derived tolerance" in text


# --- correct implementations pass --------------------------------------------------------


@correct_params
@dtype_params
@pytest.mark.parametrize("shape", FULL_SHAPES, ids=str)
def test_full_jacobian_passes_on_correct_implementations(
    impl: str, dtype: Any, shape: tuple[int, int]
) -> None:
    forward, backward = CORRECT[impl]()
    x = random_logits(shape, dtype)
    dout = random_upstream(shape, dtype)
    result = full_jacobian_check(forward, backward, x, dout=dout)
    assert_passed(result, (shape[0], shape[1], shape[1]))
    # The 2D perturbed copies of x go to the forward stacked: never more calls than 2D + 2.
    assert result.forward_calls <= 2 * shape[1] + 2


@correct_params
@dtype_params
@pytest.mark.parametrize("shape", DIRECTIONAL_SHAPES, ids=str)
def test_directional_passes_on_correct_implementations(
    impl: str, dtype: Any, shape: tuple[int, int]
) -> None:
    forward, backward = CORRECT[impl]()
    result = directional_check(forward, backward, random_logits(shape, dtype), directions=2)
    assert_passed(result, shape)
    assert result.backward_calls == 2
    assert result.forward_calls == 5  # forward(x) for the cache, then x' +/- h u per direction


@correct_params
@dtype_params
@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (16, 16), (64, 64)], ids=str)
def test_numerical_vjp_passes_on_correct_implementations(
    impl: str, dtype: Any, shape: tuple[int, int]
) -> None:
    forward, backward = CORRECT[impl]()
    x, dout = random_logits(shape, dtype), random_upstream(shape, dtype)
    assert_passed(numerical_vjp_check(forward, x, dout, backward), shape)


@st.composite
def adversarial_case(draw: st.DrawFn, dtype: Any) -> tuple[Array, Array]:
    shape = draw(st.tuples(st.integers(1, 5), st.integers(1, 9)), label="shape")
    x = draw(logits(dtype, shape=shape, max_magnitude=1e3), label="x")
    dout = draw(upstreams(shape, dtype), label="dout")
    return x, dout


@dtype_params
@given(data=st.data())
def test_no_false_alarm_on_adversarial_logits(dtype: Any, data: st.DataObject) -> None:
    """Ties, masked, dominant, far and subnormal rows: the reference passes every check."""
    x, dout = data.draw(adversarial_case(dtype))
    n, d = x.shape
    assert_passed(full_jacobian_check(softmax, softmax_backward, x, dout=dout), (n, d, d))
    assert_passed(numerical_vjp_check(softmax, x, dout, softmax_backward), (n, d))
    seed = data.draw(st.integers(0, 2**16), label="seed")
    assert_passed(directional_check(softmax, softmax_backward, x, seed=seed), (n, d))


@dtype_params
@given(data=st.data())
def test_staged_passes_on_well_conditioned_logits(dtype: Any, data: st.DataObject) -> None:
    x = data.draw(well_conditioned_logits(dtype), label="x")
    n, d = x.shape
    assert_passed(full_jacobian_check(staged_forward, staged_backward, x), (n, d, d))
    assert_passed(directional_check(staged_forward, staged_backward, x), (n, d))


# --- wrong backwards are rejected ----------------------------------------------------------


@wrong_params
@dtype_params
@pytest.mark.parametrize("shape", [(32, 32), (64, 64)], ids=str)
def test_full_jacobian_rejects_wrong_backwards(
    impl: str, dtype: Any, shape: tuple[int, int]
) -> None:
    forward, backward = WRONG[impl]
    x = random_logits(shape, dtype, seed=2)
    assert_rejected(full_jacobian_check(forward, backward, x), (shape[0], shape[1], shape[1]))


@wrong_params
@dtype_params
@pytest.mark.parametrize("shape", [(32, 32), (64, 64)], ids=str)
def test_numerical_vjp_rejects_wrong_backwards(
    impl: str, dtype: Any, shape: tuple[int, int]
) -> None:
    forward, backward = WRONG[impl]
    x, dout = random_logits(shape, dtype, seed=3), random_upstream(shape, dtype, seed=4)
    assert_rejected(numerical_vjp_check(forward, x, dout, backward), shape)


@wrong_params
def test_directional_rejects_wrong_backwards_at_1024(impl: str) -> None:
    forward, backward = WRONG[impl]
    shape = (1024, 1024)
    assert_rejected(directional_check(forward, backward, random_logits(shape, np.float64)), shape)


@wrong_params
@pytest.mark.parametrize("shape", [(32, 32), (512, 512)], ids=str)
def test_directional_rejects_wrong_backwards_in_float32(impl: str, shape: tuple[int, int]) -> None:
    forward, backward = WRONG[impl]
    assert_rejected(directional_check(forward, backward, random_logits(shape, np.float32)), shape)


# The largest sizes of ``make bench``: the checks' verdicts hold where their speed is measured.


@pytest.mark.parametrize("impl", ["reference", *WRONG])
def test_full_jacobian_at_128(impl: str) -> None:
    forward, backward = CORRECT[impl]() if impl in CORRECT else WRONG[impl]
    x = random_logits((128, 128), np.float64, seed=5, scale=3.0)
    result = full_jacobian_check(forward, backward, x)
    (assert_passed if impl in CORRECT else assert_rejected)(result, (128, 128, 128))


@pytest.mark.parametrize("impl", ["reference", *WRONG])
def test_directional_at_4096(impl: str) -> None:
    forward, backward = CORRECT[impl]() if impl in CORRECT else WRONG[impl]
    x = random_logits((4096, 4096), np.float64, seed=6, scale=3.0)
    result = directional_check(forward, backward, x)
    (assert_passed if impl in CORRECT else assert_rejected)(result, (4096, 4096))


def test_directional_gives_a_cache_consuming_backward_a_fresh_cache() -> None:
    """A backward that overwrites its cache (y) in place is correct once per forward;
    with several directions each gets a fresh forward(x), not the consumed cache."""

    def consuming_backward(dout: Array, y: Array) -> Array:
        y *= dout - (dout * y).sum(axis=1, keepdims=True)  # dx, written over the cache
        return y

    x = random_logits((16, 9), np.float64)
    result = directional_check(softmax, consuming_backward, x, directions=3)
    assert_passed(result, x.shape)
    assert (result.forward_calls, result.backward_calls) == (1 + 2 * 3 + 2, 3)


class OneBuffer:
    """Every output in one workspace, so each call overwrites what the last returned."""

    def __init__(self, scale: float = 1.0) -> None:
        self.workspace: Array | None = None
        self.scale = scale

    def _into(self, value: Array) -> Array:
        if self.workspace is None or self.workspace.shape != value.shape:
            self.workspace = np.empty_like(value)
        np.copyto(self.workspace, value)
        return self.workspace

    def forward(self, x: Array) -> tuple[Array, Array]:
        y = softmax(x)
        return self._into(y), y

    def backward(self, dout: Array, y: Array) -> Array:
        return self._into(softmax_backward(dout, y) * self.scale)


@pytest.mark.parametrize("scale", [1.0, 2.0], ids=["right", "doubled"])
def test_directional_with_outputs_in_the_inputs_buffers(scale: float) -> None:
    """The check reuses the buffer it hands over (u, then each point) only where the outputs
    leave it free: a forward and a backward that work in place on their inputs are
    judged as any other."""

    def backward(dout: Array, y: Array) -> Array:
        out = bad_impls.mutating_backward(dout, y)
        out *= scale
        return out

    x = random_logits((300, 70), np.float64)
    result = directional_check(bad_impls.mutating_forward, backward, x, directions=2)
    (assert_passed if scale == 1.0 else assert_rejected)(result, x.shape)


@pytest.mark.parametrize("scale", [1.0, 2.0], ids=["right", "doubled"])
def test_directional_with_one_buffer_for_every_output(scale: float) -> None:
    """Outputs that overwrite each other are detected (they share memory): the direction
    is evaluated again from a fresh cache, and from then on each output is copied as it
    arrives."""
    impl = OneBuffer(scale)
    x = random_logits((300, 70), np.float64)
    result = directional_check(impl.forward, impl.backward, x, directions=2)
    (assert_passed if scale == 1.0 else assert_rejected)(result, x.shape)
    # 1 for the cache and 2 per direction; the first direction again after a fresh cache.
    assert (result.forward_calls, result.backward_calls) == (1 + 2 + (1 + 2) + 2, 3)


def test_full_jacobian_with_dout_reports_the_upstream_comparison() -> None:
    """A backward right on basis upstreams but wrong on others is caught through ``dout``."""

    def nonlinear(dout: Array, y: Array) -> Array:
        dx = softmax_backward(dout, y)
        dense = np.count_nonzero(dout, axis=1) > 1  # only rows that are not basis vectors
        dx[dense] *= 1.5
        return dx

    x = random_logits((6, 8), np.float64)
    dout = random_upstream((6, 8), np.float64)
    assert full_jacobian_check(softmax, nonlinear, x).passed
    result = full_jacobian_check(softmax, nonlinear, x, dout=dout)
    assert_rejected(result, (6, 8))
    assert result.mismatch is not None
    assert result.mismatch.what == "backward(dout) vs J^T dout"


def test_full_jacobian_reports_the_wrong_entry() -> None:
    """One wrong Jacobian entry dy_2/dx_3 is reported at (row, 2, 3), for every row."""

    def one_wrong_entry(dout: Array, y: Array) -> Array:
        dx = softmax_backward(dout, y)
        dx[:, 3] += 1e-3 * dout[:, 2]
        return dx

    for dtype in DTYPES:
        result = full_jacobian_check(softmax, one_wrong_entry, random_logits((4, 6), dtype))
        assert_rejected(result, (4, 6, 6))
        assert result.worst[1:] == (2, 3)
        assert result.mismatch is not None
        assert result.mismatch.count == 4


def test_directional_returns_the_worst_direction() -> None:
    x = random_logits((16, 16), np.float64)
    one = directional_check(bad_impls.stable, bad_impls.double_backward, x, directions=1)
    three = directional_check(bad_impls.stable, bad_impls.double_backward, x, directions=3)
    assert_rejected(three, (16, 16))
    ratio = abs(three.expected - three.actual) / three.tolerance
    assert ratio >= abs(one.expected - one.actual) / one.tolerance
    assert three.backward_calls == 3


# --- regressions ---------------------------------------------------------------------------


@dtype_params
def test_directional_accepts_logits_near_powers_of_two_and_below_the_step(dtype: Any) -> None:
    """``x +/- h u`` is inexact there; the check rounds x to the step grid instead of refusing."""
    below_two = np.nextafter(dtype(2), dtype(0))
    odd = np.array([below_two, -below_two, np.nextafter(dtype(1), dtype(0)), 1e-30, 0.0, 3.0])
    x = np.tile(odd, (8, 2)).astype(dtype)
    assert_passed(directional_check(softmax, softmax_backward, x, directions=3), x.shape)
    assert_rejected(directional_check(bad_impls.stable, bad_impls.double_backward, x), x.shape)


def test_directional_accepts_a_large_standard_normal_float64_input() -> None:
    """At 1024x1024 some entry is always within h of a power of two (was a ValueError)."""
    x = random_logits((1024, 1024), np.float64, scale=1.0)
    assert_passed(directional_check(softmax, softmax_backward, x, directions=1), x.shape)


@dtype_params
@pytest.mark.parametrize("offset", [100.0, 1000.0, -3000.0])
def test_large_logits_do_not_loosen_the_tolerance(dtype: Any, offset: float) -> None:
    """Softmax is shift-invariant: a doubled backward is caught at any offset."""
    x = (random_logits((8, 8), np.float64) + offset).astype(dtype)
    dout = random_upstream((8, 8), dtype)
    assert_passed(full_jacobian_check(softmax, softmax_backward, x, dout=dout), (8, 8, 8))
    assert_passed(numerical_vjp_check(softmax, x, dout, softmax_backward), (8, 8))
    assert_passed(directional_check(softmax, softmax_backward, x), (8, 8))
    for backward in (bad_impls.double_backward, bad_impls.diagonal_backward):
        assert_rejected(full_jacobian_check(bad_impls.stable, backward, x), (8, 8, 8))
        assert_rejected(numerical_vjp_check(bad_impls.stable, x, dout, backward), (8, 8))
        assert_rejected(directional_check(bad_impls.stable, backward, x), (8, 8))


def test_a_single_column_jacobian_is_zero() -> None:
    """D = 1: y = 1 whatever x, so J = 0 and even a zero or doubled backward is right."""
    x = random_logits((5, 1), np.float64)
    for backward in (zero_backward, bad_impls.double_backward, bad_impls.diagonal_backward):
        assert full_jacobian_check(softmax, backward, x).passed
    assert full_jacobian_check(softmax, softmax_backward, x).max_error == 0.0


# --- argument validation -------------------------------------------------------------------


def run_check(name: str, x: Any, **kwargs: Any) -> GradcheckResult:
    """Call one check with the reference; ``x`` and ``dout`` may be anything, on purpose."""
    if name == "full":
        return full_jacobian_check(softmax, softmax_backward, x, **kwargs)
    if name == "directional":
        return directional_check(softmax, softmax_backward, x, **kwargs)
    dout = kwargs.pop("dout", np.ones((2, 3)))
    return numerical_vjp_check(softmax, x, dout, softmax_backward)


check_params = pytest.mark.parametrize("check", ["full", "directional", "vjp"])


@check_params
@pytest.mark.parametrize(
    "x",
    [np.ones(3), np.ones((2, 3, 4)), np.ones((0, 3)), np.ones((3, 0))],
    ids=["1-D", "3-D", "no rows", "no columns"],
)
def test_x_must_be_a_non_empty_matrix(check: str, x: Array) -> None:
    with pytest.raises(ValueError, match=r"x must be a non-empty 2-D \(N, D\) array"):
        run_check(check, x)


@check_params
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_x_must_be_finite(check: str, bad: float) -> None:
    x = np.zeros((2, 3))
    x[1, 2] = bad
    with pytest.raises(ValueError, match="x must be finite"):
        run_check(check, x)


@check_params
@pytest.mark.parametrize(
    "x", [np.ones((2, 3), dtype=np.int64), "logits", np.ones((2, 3), dtype=np.complex64)]
)
def test_x_must_be_a_float_array(check: str, x: object) -> None:
    with pytest.raises(TypeError, match=r"^x must"):
        run_check(check, x)


@check_params
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_x_too_large_for_a_step_is_refused(check: str, dtype: Any) -> None:
    x = np.array([[0.0, 1.0, float(np.finfo(dtype).max) / 4]], dtype=dtype)
    dout = np.ones_like(x)
    with pytest.raises(ValueError, match="x has entries too large"):
        run_check(check, x, **({"dout": dout} if check != "directional" else {}))


@pytest.mark.parametrize("directions", [0, -1])
def test_directions_must_be_positive(directions: int) -> None:
    with pytest.raises(ValueError, match="directions must be a positive int"):
        directional_check(softmax, softmax_backward, np.ones((2, 3)), directions=directions)


@pytest.mark.parametrize("directions", [1.5, "2", True, None])
def test_directions_must_be_an_int(directions: Any) -> None:
    with pytest.raises(TypeError, match="directions must be a positive int"):
        directional_check(softmax, softmax_backward, np.ones((2, 3)), directions=directions)


@pytest.mark.parametrize("check", ["full", "vjp"])
def test_dout_must_match_x(check: str) -> None:
    x = np.ones((2, 3))
    with pytest.raises(ValueError, match="dout must have the same shape as x"):
        run_check(check, x, dout=np.ones((3, 2)))
    with pytest.raises(TypeError, match="dout must have the same dtype as x"):
        run_check(check, x, dout=np.ones((2, 3), dtype=np.float32))
    with pytest.raises(TypeError, match=r"^dout must"):
        run_check(check, x, dout=np.ones((2, 3), dtype=np.int64))


def test_backward_is_required() -> None:
    x = np.ones((2, 3))
    with pytest.raises(TypeError, match="backward must be given"):
        full_jacobian_check(softmax, None, x)
    with pytest.raises(TypeError, match="backward must be given"):
        directional_check(softmax, None, x)
    with pytest.raises(TypeError, match="backward must be given"):
        numerical_vjp_check(softmax, x, x)


def test_tallies_of_row_blocks_merge_into_the_tally_of_the_whole() -> None:
    """directional_check compares row blocks on several threads and merges their tallies:
    the merged result must be exactly the one-pass result (worst entry, counts, maxima)."""
    from softmax_verify.gradcheck._tally import _Tally

    rng = np.random.default_rng(7)
    numerical = rng.standard_normal((40, 6))
    analytic = numerical + rng.standard_normal((40, 6)) * 1e-3
    tol = np.full((40, 6), 2e-3)
    analytic[[3, 17, 31], [1, 4, 2]] += [0.5, -0.9, 0.9]  # mismatches, a tie in size
    whole = _Tally("what", (40, 6))
    whole.add(numerical, analytic, tol)
    merged = _Tally("what", (40, 6))
    for a in range(0, 40, 7):
        part = _Tally("what", (40, 6))
        part.add(numerical[a : a + 7], analytic[a : a + 7], tol[a : a + 7], a)
        merged.merge(part)
    assert merged.result(1, 1) == whole.result(1, 1)
    assert whole.result(1, 1).worst == (17, 4)


@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (64, 64), (7, 1001)], ids=str)
def test_directions_are_eighths_four_to_seven_uniformly(shape: tuple[int, int]) -> None:
    """directional_check's u = eighths / 8: entries +/- 4..7 (every entry O(1), exact in
    every dtype), the same for a seed, and each of the eight values about equally often."""
    from softmax_verify.gradcheck._directions import _draw_eighths

    eighths = _draw_eighths(np.random.default_rng(5), shape)
    assert eighths.shape == shape
    assert eighths.dtype == np.int8
    assert np.array_equal(eighths, _draw_eighths(np.random.default_rng(5), shape))
    assert set(np.unique(eighths)) <= {-7, -6, -5, -4, 4, 5, 6, 7}
    many = _draw_eighths(np.random.default_rng(5), (256, 1000)).ravel()
    values, counts = np.unique(many, return_counts=True)
    assert list(values) == [-7, -6, -5, -4, 4, 5, 6, 7]
    # Binomial(256000, 1/8): standard deviation 167, so 6 sigma is about 1000.
    assert np.all(np.abs(counts - many.size / 8) < 1000)
