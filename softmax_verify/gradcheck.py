r"""Gradient checks that are exhaustive and cheap, by using softmax's structure.

- ``full_jacobian_check``: every entry of every row's D x D Jacobian by central
  differences of 2D perturbed copies of x (column j of every row perturbed at once:
  rows are independent), against the analytic Jacobian from the D basis upstreams;
  the copies and the upstreams go to the forward and backward in a few stacked
  calls. ``torch.autograd.gradcheck`` needs 2ND forward calls.
- ``directional_check``: O(1) forward calls per direction. Because J is
  symmetric, :math:`J u` from two forward calls equals ``backward(u)`` entry by
  entry, so a zero, scaled or diagonal-only backward is caught at any size
  (a single scalar :math:`\langle w, J u\rangle` would average such errors away).
- ``numerical_vjp_check``: the VJP :math:`J^\top g` by central differences,
  entry by entry (the ``central_differences`` invariant).

Step sizes are powers of two near ``tolerances.central_difference_step`` (about
the cube root of the unit roundoff), the same for every logit whatever its
magnitude: softmax is shift-invariant, so neither the truncation error (its
derivatives are bounded independently of x) nor the forward's rounding error
grows with ``|x|``, and a step scaled by ``|x|`` would only loosen the tolerance
(at ``|x| = 1000`` in float32 so far that a doubled backward passed). Logits
whose ulp exceeds the step are rejected (ValueError): no informative finite
difference exists there. The steps actually taken are measured and used.
Tolerances per entry: truncation (the third derivative of softmax along a
coordinate is at most 1/8, that of the logistic function) + rounding (the
forward bound at both points, divided by the step) + the float64 arithmetic of
the estimate itself + the backward's own bound.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from softmax_verify._compare import Mismatch, find_mismatch
from softmax_verify._validate import as_float_array, check_same_shape
from softmax_verify.errors import InvariantViolation
from softmax_verify.implementation import Implementation
from softmax_verify.reference import softmax
from softmax_verify.tolerances import (
    backward_error_bound,
    central_difference_step,
    forward_error_bound,
    gamma,
)

__all__ = ["GradcheckResult", "directional_check", "full_jacobian_check", "numerical_vjp_check"]

F64 = NDArray[np.float64]

#: max |sigma''| of the logistic function: sigma(1 - sigma)(1 - 2 sigma) peaks at 1/(6 sqrt 3).
_SECOND = 1 / (6 * math.sqrt(3))
#: max |sigma'''|: sigma(1 - sigma)(1 - 6 sigma(1 - sigma)) is -1/8 at sigma = 1/2.
_THIRD = 1 / 8


@dataclass(frozen=True)
class GradcheckResult:
    """Outcome of a gradient check: the worst entry by error-to-tolerance ratio.

    ``worst`` is ``(row, i, j)`` for a Jacobian entry dy_i/dx_j, ``(row, j)`` for an
    entry of a VJP or JVP; ``expected`` is the numerical value, ``actual`` the
    backward's.
    """

    passed: bool
    max_error: float
    tolerance: float
    worst: tuple[int, ...]
    expected: float
    actual: float
    forward_calls: int
    backward_calls: int
    mismatch: Mismatch | None = None

    def raise_if_failed(self, invariant: str) -> None:
        if not self.passed:
            raise InvariantViolation(
                invariant,
                "backward disagrees with central differences of forward",
                mismatch=self.mismatch,
            )


def _f64(a: NDArray[Any]) -> F64:
    return np.asarray(a, dtype=np.float64)


def _power_of_two(h: float) -> float:
    return float(2.0 ** round(math.log2(h)))


def _exact(x: NDArray[Any]) -> F64:
    return _f64(softmax(_f64(x)))


class _Tally:
    """The worst entry and the mismatch of one comparison, accumulated block by block of rows.

    Merging per-block results gives exactly what one pass over the whole array gives:
    the worst entry is the first one with the largest error-to-tolerance ratio, and the
    mismatch counts, maxima and worst entry are those of ``find_mismatch`` on the whole.
    """

    def __init__(self, what: str, shape: tuple[int, ...]) -> None:
        self.what = what
        self.shape = shape
        self.max_error = 0.0
        self.ratio = -1.0
        self.worst: tuple[int, ...] = (0,) * len(shape)
        self.expected = self.actual = self.tolerance = 0.0
        self.count = 0
        self.max_abs = self.max_rel = 0.0
        self.mismatch_ratio = -1.0
        self.mismatch: Mismatch | None = None

    def add(self, numerical: F64, analytic: NDArray[Any], tol: F64, row: int = 0) -> None:
        """Compare one block whose first row is row ``row`` of the whole."""
        act = _f64(analytic)
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            err = np.abs(numerical - act)
            ratio = np.where(np.isnan(err), np.inf, err / np.where(tol > 0, tol, 1e-300))
        if ratio.size == 0:
            return
        flat = int(np.argmax(ratio))
        local = np.unravel_index(flat, ratio.shape)
        self.max_error = max(self.max_error, float(np.nan_to_num(err, nan=np.inf).max()))
        if float(ratio[local]) > self.ratio:
            self.ratio = float(ratio[local])
            self.worst = (int(local[0]) + int(row), *(int(i) for i in local[1:]))
            self.expected = float(numerical[local])
            self.actual = float(act[local])
            self.tolerance = float(tol[local])
        found = find_mismatch(act, numerical, tol, what=self.what)
        if found is None:
            return
        self.count += found.count
        self.max_abs = max(self.max_abs, found.max_abs_error)
        self.max_rel = max(self.max_rel, found.max_rel_error)
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            bad_err = np.abs(np.float64(found.actual) - np.float64(found.expected))
            bad_tol = found.tolerance if found.tolerance > 0 else np.finfo(np.float64).tiny
            bad_ratio = float(np.inf if np.isnan(bad_err) else bad_err / bad_tol)
        if bad_ratio > self.mismatch_ratio:
            self.mismatch_ratio = bad_ratio
            index = (int(found.worst_index[0]) + int(row), *found.worst_index[1:])
            self.mismatch = replace(found, worst_index=index)

    def result(self, forward_calls: int, backward_calls: int) -> GradcheckResult:
        mismatch = None
        if self.mismatch is not None:
            mismatch = replace(
                self.mismatch,
                count=self.count,
                total=math.prod(self.shape),
                max_abs_error=self.max_abs,
                max_rel_error=self.max_rel,
            )
        return GradcheckResult(
            passed=mismatch is None,
            max_error=self.max_error,
            tolerance=self.tolerance,
            worst=self.worst,
            expected=self.expected,
            actual=self.actual,
            forward_calls=forward_calls,
            backward_calls=backward_calls,
            mismatch=mismatch,
        )


def _result(
    numerical: F64, analytic: NDArray[Any], tol: F64, what: str, calls: tuple[int, int]
) -> GradcheckResult:
    tally = _Tally(what, numerical.shape)
    tally.add(numerical, analytic, tol)
    return tally.result(*calls)


def _implementation(forward: Any, backward: Any) -> Implementation:
    if isinstance(forward, Implementation):
        return forward
    if backward is None:
        raise TypeError("backward must be given (a callable), got None")
    return Implementation(forward, backward, timeout=None)


def _matrix(x: object, name: str) -> NDArray[Any]:
    array = as_float_array(x, name)
    if array.ndim != 2 or 0 in array.shape:
        raise ValueError(f"{name} must be a non-empty 2-D (N, D) array, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} must be finite for a gradient check")
    return array


#: Rows x columns of the stacks of perturbed inputs that the column checks pass to one
#: forward call (512 KiB in float64): large enough to amortize a call's overhead, small
#: enough that the passes over a stack and its bounds run in cache.
_STACK_ENTRIES = 1 << 16


@dataclass(frozen=True)
class _Columns:
    r"""Central differences for the columns ``start:stop`` (c of them), every row at once.

    ``diff[k, r, i] = y_ri(x + h_+ e_j) - y_ri(x - h_- e_j)`` for j = start + k (float64);
    ``steps[:, k, r]`` the steps ``(h_+, h_-)`` actually taken (``x +/- h`` is rounded
    to the dtype; measured), ``width[k, r] = fl(x_+ - x_-)`` (one rounding) and
    ``rounding[k, r, i]`` the forward's bound :math:`E^+ + E^-` at the two points.

    The bound at :math:`x \pm h_\pm e_j` is evaluated with :math:`e^{\max h_\pm} y_i(x)`
    in place of the exact probability there: along one coordinate
    :math:`|\partial \log y_i / \partial x_j| = |\delta_{ij} - y_j| \le 1`, so
    :math:`y_i(x \pm s e_j) \le e^s y_i(x)`, and the bound grows with the probability.
    This saves evaluating the reference at every perturbed point.
    """

    start: int
    stop: int
    diff: F64
    steps: F64
    width: F64
    rounding: F64


def _column_chunks(n: int, d: int, copies: int) -> list[tuple[int, int]]:
    """Chunks of columns such that ``copies`` stacked (N, D) arrays per column fit a stack."""
    cols = max(1, _STACK_ENTRIES // (copies * n * d))
    return [(start, min(start + cols, d)) for start in range(0, d, cols)]


def _check_step(x: NDArray[Any], h: float) -> None:
    largest = float(np.abs(x).max())
    if float(np.spacing(np.asarray(largest, dtype=x.dtype))) > h:
        raise ValueError(
            f"x has entries too large for a finite-difference step of {h:g} in {x.dtype}: "
            f"the ulp of |x| = {largest:g} exceeds it"
        )


def _column_steps(impl: Implementation, x: NDArray[Any], y: F64, h: float) -> Iterator[_Columns]:
    """Central differences of the forward along every column, chunk by chunk of columns.

    The inputs ``x + h e_j`` and ``x - h e_j`` of a chunk are stacked into one
    (2cN, D) array and passed to one forward call: rows are independent (the same
    assumption as perturbing column j of every row at once), so each row's output is
    what the forward gives that row alone. The step is h for every entry; ValueError
    where the ulp of x exceeds it (``x +/- h`` would round back to x or far from it).
    ``y`` is the reference at x, for the rounding bounds (see ``_Columns``).
    """
    n, d = x.shape
    _check_step(x, h)
    x64 = _f64(x)
    for start, stop in _column_chunks(n, d, 2):
        c = stop - start
        k, cols = np.arange(c)[:, None], np.arange(start, stop)[:, None]
        rows = np.arange(n)[None, :]
        stack = np.empty((2, c, n, d), dtype=x.dtype)
        stack[:] = x
        stack[0, k, rows, cols] = x64[:, start:stop].T + h
        stack[1, k, rows, cols] = x64[:, start:stop].T - h
        moved = _f64(stack[:, k, rows, cols])  # (2, c, N): x_+ and x_-
        base = x64[:, start:stop].T
        steps = np.stack([moved[0] - base, base - moved[1]])
        flat = stack.reshape(2 * c * n, d)
        out = _f64(impl.forward(flat).y).reshape(2, c, n, d)
        above = np.exp(steps.max(axis=0))[:, :, None] * y  # >= y at both points (c, N, D)
        rounding = forward_error_bound(
            flat, np.broadcast_to(above, (2, c, n, d)).reshape(2 * c * n, d), x.dtype
        ).reshape(2, c, n, d)
        yield _Columns(
            start=start,
            stop=stop,
            diff=out[0] - out[1],
            steps=steps,
            width=moved[0] - moved[1],
            rounding=rounding[0] + rounding[1],
        )


def numerical_vjp_check(
    forward: Any, x: NDArray[Any], dout: NDArray[Any], backward: Any = None
) -> GradcheckResult:
    r"""``backward(dout)`` against central differences of :math:`L = \sum dout \odot f(x)`.

    Per entry (r, j), with steps :math:`h_\pm`, R the range of row r of dout and
    :math:`E^\pm` the forward bound at the two points (see ``_Columns``):
    :math:`|L'''| \le R/8` and :math:`|L''| \le R/(6\sqrt3)` along one coordinate, so

    tolerance = :math:`\max(h_\pm)^2 R/48 + |h_+ - h_-| R/(12\sqrt3)`
    + :math:`\sum_i |g_i| (E_i^+ + E_i^-) / (h_+ + h_-)`
    + :math:`\gamma_{D+3} \sum_i |g_i| |\Delta_i| / (h_+ + h_-)` + the backward bound.

    :math:`\gamma_{D+3}`: the estimate :math:`\sum_i g_i \Delta_i / (h_+ + h_-)` is taken in
    float64 with, per term, the subtraction :math:`\Delta_i` of the two outputs, the
    product, D - 1 additions, the width and the division.

    The perturbed inputs go to the forward in stacks of columns (see ``_column_steps``):
    a few forward calls rather than 2D.
    """
    impl = _implementation(forward, backward)
    x = _matrix(x, "x")
    g = as_float_array(dout, "dout")
    check_same_shape(g, "dout", x, "x")
    n, d = x.shape
    g64 = _f64(g)
    rng = g64.max(axis=1) - g64.min(axis=1)
    analytic = impl.vjp(x, g)
    numerical = np.empty((n, d))
    tol = np.empty((n, d))
    absg = np.abs(g64)
    calls = 1
    h = _power_of_two(central_difference_step(d, x.dtype))
    y = _exact(x)
    for chunk in _column_steps(impl, x, y, h):
        calls += 1
        cols = slice(chunk.start, chunk.stop)
        numerical[:, cols] = np.einsum("ri,kri->rk", g64, chunk.diff) / chunk.width.T
        tol[:, cols] = (
            (chunk.steps.max(axis=0) ** 2).T * rng[:, None] * _THIRD / 6
            + np.abs(chunk.steps[0] - chunk.steps[1]).T * rng[:, None] * _SECOND / 2
            + (
                np.einsum("ri,kri->rk", absg, chunk.rounding)
                + gamma(d + 3, np.float64) * np.einsum("ri,kri->rk", absg, np.abs(chunk.diff))
            )
            / chunk.width.T
        )
    tol += backward_error_bound(x, y, g, x.dtype)
    return _result(numerical, analytic, tol, "backward(dout) vs central differences", (calls, 1))


def full_jacobian_check(
    forward: Callable[..., Any] | Implementation,
    backward: Callable[..., Any] | None,
    x: NDArray[Any],
    *,
    dout: NDArray[Any] | None = None,
) -> GradcheckResult:
    r"""Every Jacobian entry :math:`\partial y_{ri}/\partial x_{rj}`, numerical vs analytic.

    Numerical: column j of every row perturbed at once, 2D perturbed copies of x, passed
    to the forward in stacks (a few calls; see ``_column_steps``). Analytic: row i of J
    is ``backward(e_i)`` for the basis upstream e_i; the D upstreams go to the backward
    in stacks too, with the cache of the forward of as many stacked copies of x (rows are
    independent). Tolerance per entry: the numerical part :math:`T_{ij} =
    \max(h_\pm)^2/48 + |h_+ - h_-|/(12\sqrt3) + (E_i^+ + E_i^-)/(h_+ + h_-) +
    \gamma_3 |N_{ij}|` (:math:`\gamma_3`: the float64 subtraction of the outputs, the
    width and the division) + the backward bound for :math:`g = e_i`.

    With ``dout`` given, ``backward(dout)`` (after ``forward(x)``) is also compared with
    :math:`N^\top dout`, within :math:`\sum_i |g_i| T_{ij} + \gamma_D \sum_i |g_i|
    |N_{ij}|` (the float64 inner product) + the backward bound for g = dout; the worse
    result is returned.
    """
    impl = _implementation(forward, backward)
    x = _matrix(x, "x")
    g = None if dout is None else as_float_array(dout, "dout")
    if g is not None:
        check_same_shape(g, "dout", x, "x")
    n, d = x.shape
    h = _power_of_two(central_difference_step(d, x.dtype))
    y = _exact(x)
    # Analytic rows of J and their bounds, laid out [i, r, j] = backward(e_i)[r, j].
    analytic = np.empty((d, n, d))
    bound = np.empty((d, n, d))
    forward_calls = backward_calls = 0
    for start, stop in _column_chunks(n, d, 1):
        c = stop - start
        copies = np.broadcast_to(x, (c, n, d)).reshape(c * n, d)
        basis = np.zeros((c, n, d), dtype=x.dtype)
        basis[np.arange(c), :, np.arange(start, stop)] = 1
        cache = impl.forward(copies).cache
        dx = impl.backward(basis.reshape(c * n, d), cache).dx
        forward_calls, backward_calls = forward_calls + 1, backward_calls + 1
        analytic[start:stop] = dx.reshape(c, n, d)
        bound[start:stop] = backward_error_bound(
            copies,
            np.broadcast_to(y, (c, n, d)).reshape(c * n, d),
            basis.reshape(c * n, d),
            x.dtype,
        ).reshape(c, n, d)
    # Numerical columns, compared chunk by chunk in the layout [j, r, i] = dy_ri/dx_rj.
    tally = _Tally("Jacobian dy_i/dx_j vs central differences", (d, n, d))
    by_column_analytic = np.ascontiguousarray(analytic.transpose(2, 1, 0))
    by_column_bound = np.ascontiguousarray(bound.transpose(2, 1, 0))
    vjp_num, vjp_tol = np.zeros((n, d)), np.zeros((n, d))
    for chunk in _column_steps(impl, x, y, h):
        forward_calls += 1
        cols = slice(chunk.start, chunk.stop)
        numerical = chunk.diff / chunk.width[:, :, None]
        part = (
            (chunk.steps.max(axis=0) ** 2)[:, :, None] * _THIRD / 6
            + np.abs(chunk.steps[0] - chunk.steps[1])[:, :, None] * _SECOND / 2
            + chunk.rounding / chunk.width[:, :, None]
            + gamma(3, np.float64) * np.abs(numerical)
        )
        tally.add(numerical, by_column_analytic[cols], part + by_column_bound[cols], chunk.start)
        if g is not None:
            absg = np.abs(_f64(g))
            vjp_num[:, cols] = np.einsum("ri,kri->rk", _f64(g), numerical)
            vjp_tol[:, cols] = np.einsum("ri,kri->rk", absg, part) + gamma(
                d, np.float64
            ) * np.einsum("ri,kri->rk", absg, np.abs(numerical))
    result = _jacobian_order(tally.result(forward_calls, backward_calls))
    if g is None:
        return result
    vjp_tol += backward_error_bound(x, y, g, x.dtype)
    vjp = _result(
        vjp_num,
        impl.vjp(x, g),
        vjp_tol,
        "backward(dout) vs J^T dout",
        (forward_calls + 1, backward_calls + 1),
    )
    return vjp if (not vjp.passed and result.passed) else result


def _jacobian_order(result: GradcheckResult) -> GradcheckResult:
    """``result`` with its indices (j, r, i), as the columns were compared, as (r, i, j)."""

    def order(index: tuple[int, ...]) -> tuple[int, ...]:
        j, r, i = index
        return (r, i, j)

    mismatch = result.mismatch
    if mismatch is not None:
        mismatch = replace(mismatch, worst_index=order(mismatch.worst_index))
    return replace(result, worst=order(result.worst), mismatch=mismatch)


def _on_step_grid(x64: F64, step: F64, dtype: np.dtype[Any]) -> F64:
    r"""``x`` rounded, entry by entry, to the spacing of ``|x| + |step|`` in ``dtype``.

    With s that spacing (a power of two), :math:`x' \pm step` is exact in ``dtype``
    whenever ``step`` is a multiple of s: both are multiples of s no larger in magnitude
    than :math:`|x| + |step| + s/2`, which fits s's binade. Where ``x +/- step`` is exact
    already, x is a multiple of s and is unchanged; elsewhere (x within ``|step|`` of a
    power of two, or ``|x| < |step|``) it moves by at most s/2, half an ulp of
    ``|x| + |step|``. Dividing and multiplying by s and rounding are exact in float64.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        s = np.spacing((np.abs(x64) + np.abs(step)).astype(dtype)).astype(np.float64)
        grid: F64 = np.round(x64 / s) * s
    return grid


def _step_for_magnitude(h: float, largest: float, dtype: np.dtype[Any]) -> float:
    """The power of two ``h``, raised until ``h / 8`` is a multiple of the ulp of ``largest + h``.

    Then every ``h * u`` (u in multiples of 1/8) is a multiple of the spacing that
    ``_on_step_grid`` rounds to, at every entry. Unchanged for ordinary logits.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        for _ in range(4):  # raising h moves largest + h up a binade at most once or twice
            ulp = float(np.spacing(np.asarray(largest + h, dtype=dtype)))
            if not math.isfinite(ulp) or 8 * ulp <= h:
                break
            h = 8 * ulp
    return h


def _ratio(result: GradcheckResult) -> float:
    """Error over tolerance at the result's worst entry (inf for NaN or a zero tolerance)."""
    err = abs(result.expected - result.actual)
    if math.isnan(err):
        return math.inf
    if result.tolerance > 0:
        return err / result.tolerance
    return math.inf if err > 0 else 0.0


#: Entries per block of rows in directional_check's elementwise work (256 KiB in float64),
#: so that its many passes over each block run in cache rather than in main memory.
_BLOCK_ENTRIES = 1 << 15

#: The entries of a direction: +/- k/8 for k in 4..8 (three significant bits at most).
_DIRECTION_ENTRIES = np.array([-8, -7, -6, -5, -4, 4, 5, 6, 7, 8], dtype=np.float64) / 8


def _row_blocks(n: int, d: int) -> list[tuple[int, int]]:
    rows = max(1, _BLOCK_ENTRIES // d)
    return [(start, min(start + rows, n)) for start in range(0, n, rows)]


def _step_points(
    x: NDArray[Any], u: NDArray[Any], h: float
) -> tuple[NDArray[Any], NDArray[Any], F64]:
    """``(x' + h u, x' - h u, shift)`` in x's dtype, both exact (see directional_check).

    ``x' = x`` wherever ``x +/- h u`` is exact; elsewhere x' is x on the step grid
    (``_on_step_grid``). ``shift`` (N, 1) is each row's :math:`\\max_i |x'_i - x_i|`
    (0 for most rows). ValueError if some ``x' +/- h u`` is still not exact (it
    overflows, or h is below x's ulp).
    """
    xp, xm = np.empty_like(x), np.empty_like(x)
    shift = np.zeros((x.shape[0], 1))
    for a, b in _row_blocks(*x.shape):
        x64 = _f64(x[a:b])
        step = h * _f64(u[a:b])  # exact: u has three significant bits, h is a power of two
        with np.errstate(over="ignore", invalid="ignore"):
            xp[a:b] = x64 + step
            xm[a:b] = x64 - step
            inexact = (_f64(xp[a:b]) - x64 != step) | (x64 - _f64(xm[a:b]) != step)
        if not inexact.any():
            continue
        rows, cols = np.nonzero(inexact)
        s = step[rows, cols]
        grid = _on_step_grid(x64[rows, cols], s, x.dtype)
        with np.errstate(over="ignore", invalid="ignore"):
            xp[a:b][rows, cols] = grid + s
            xm[a:b][rows, cols] = grid - s
            exact = (
                np.array_equal(_f64(grid.astype(x.dtype)), grid)
                and np.array_equal(_f64(xp[a:b][rows, cols]) - grid, s)
                and np.array_equal(grid - _f64(xm[a:b][rows, cols]), s)
            )
        if not exact:
            raise ValueError(f"x has entries too large for an exact step of {h:g} in {x.dtype}")
        np.maximum.at(shift[a:b, 0], rows, np.abs(grid - x64[rows, cols]))
    return xp, xm, shift


def directional_check(
    forward: Callable[..., Any] | Implementation,
    backward: Callable[..., Any] | None,
    x: NDArray[Any],
    *,
    directions: int = 2,
    seed: int = 0,
) -> GradcheckResult:
    r"""``backward(u)`` against :math:`J u \approx (f(x + h u) - f(x - h u)) / 2h`, entry by entry.

    Directions have entries :math:`\pm k/8`, k in 4..8 (every entry O(1), so every
    Jacobian column contributes); h is a power of two. ``backward(u)`` is taken at x
    (with the cache of ``forward(x)``); the central difference is taken about
    :math:`x'`, x rounded, entry by entry, to the spacing of :math:`|x| + h|u|` in x's
    dtype, so that :math:`x' \pm h u` is exact. :math:`x' = x` except where
    :math:`x \pm h u` would round (x within :math:`h|u|` of a power of two, or
    :math:`|x| < h|u|`), and there :math:`|x' - x|` is at most half an ulp of
    :math:`|x| + h|u|`. Where the ulp of :math:`\max|x| + h` exceeds :math:`h/8` (the
    granularity of :math:`h u`), h is raised to 8 such ulps, and the tolerance grows with
    it as below; where that ulp exceeds the unraised h itself, ValueError (as in the
    other checks).

    Per row, with R the range of u and :math:`\delta = \max_i |x'_i - x_i|`:

    - :math:`y_i(x') \le e^{2\delta} y_i(x)` and, along u,
      :math:`y_i(x' + t u) \le e^{|t| R} y_i(x')` (:math:`|\partial \log y_i| \le` twice
      the largest step, resp. R); write :math:`G = e^{hR + 2\delta}`;
    - truncation: :math:`|y_i'''| \le 2.75 R^3 y_i(\xi)` along u (cumulant expansion of
      :math:`\log y_i`), so :math:`h^2 \cdot 2.75 R^3 G y_i / 6`;
    - rounding: :math:`(E_i^+ + E_i^-)/2h`, the forward bound at :math:`x' \pm h u`
      evaluated with :math:`G y_i(x)` in place of the exact probability there (the bound
      grows with it), + :math:`\gamma_1 |num_i|` (the float64 subtraction; dividing by
      2h is exact);
    - moving from x to x': :math:`|(J(x') u)_i - (J(x) u)_i| \le 4 R \delta e^{2\delta}
      y_i(x)` (the derivative of :math:`y_i (u_i - \bar u)` along
      :math:`x' - x` is at most :math:`4 R \delta y_i`); zero where no entry moved;
    - + the backward bound at x for g = u.

    The forward and backward are called on the whole array; the comparison runs block
    by block of rows (rows are independent), which gives the same result faster. Of
    several directions, the failing one with the largest error-to-tolerance ratio at its
    worst entry is returned, else the passing one with the largest ratio.
    """
    impl = _implementation(forward, backward)
    x = _matrix(x, "x")
    if isinstance(directions, bool) or not isinstance(directions, int):
        raise TypeError(f"directions must be a positive int, got {type(directions).__name__}")
    if directions < 1:
        raise ValueError(f"directions must be a positive int, got {directions!r}")
    n, d = x.shape
    h0 = _power_of_two(central_difference_step(d, x.dtype))
    largest = float(np.abs(x).max())
    h = _step_for_magnitude(h0, largest, x.dtype)
    if h > 8 * h0:
        raise ValueError(
            f"x has entries too large for a finite-difference step of {h0:g} in {x.dtype}: "
            f"the ulp of |x| = {largest:g} exceeds it"
        )
    rng = np.random.default_rng(seed)
    entries = _DIRECTION_ENTRIES.astype(x.dtype)
    cache = impl.forward(x).cache
    results: list[GradcheckResult] = []
    for k in range(directions):
        u = entries[rng.integers(0, entries.size, size=x.shape, dtype=np.int8)]
        xp, xm, shift = _step_points(x, u, h)
        yp, ym = impl.forward(xp).y, impl.forward(xm).y
        dx = impl.backward(u, cache).dx
        tally = _Tally(f"backward(u_{k}) vs J u_{k}", x.shape)
        for a, b in _row_blocks(n, d):
            ub = _f64(u[a:b])
            y = _exact(x[a:b])
            numerical = (_f64(yp[a:b]) - _f64(ym[a:b])) / (2 * h)
            spread = (ub.max(axis=1) - ub.min(axis=1))[:, None]
            delta = shift[a:b]
            above = np.exp(h * spread + 2 * delta) * y  # >= y on the whole segment
            tol = (
                h**2 * 2.75 * spread**3 * above / 6
                + (
                    forward_error_bound(xp[a:b], above, x.dtype)
                    + forward_error_bound(xm[a:b], above, x.dtype)
                )
                / (2 * h)
                + gamma(1, np.float64) * np.abs(numerical)
                + 4 * spread * delta * np.exp(2 * delta) * y
                + backward_error_bound(x[a:b], y, u[a:b], x.dtype)
            )
            tally.add(numerical, dx[a:b], tol, a)
        results.append(tally.result(1 + 2 * (k + 1), k + 1))
    failing = [r for r in results if not r.passed]
    worst = max(failing or results, key=_ratio)
    return GradcheckResult(
        **{**worst.__dict__, "forward_calls": 1 + 2 * directions, "backward_calls": directions}
    )
