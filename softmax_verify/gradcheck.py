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

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from softmax_verify._finite_differences import (
    _DIRECTION_ENTRIES,
    _SECOND,
    _THIRD,
    _column_chunks,
    _column_steps,
    _exact,
    _power_of_two,
    _row_blocks,
    _step_for_magnitude,
    _step_points,
)
from softmax_verify._tally import GradcheckResult, _f64, _jacobian_order, _ratio, _result, _Tally
from softmax_verify._validate import as_float_array, check_same_shape
from softmax_verify.implementation import Implementation
from softmax_verify.tolerances import (
    backward_error_bound,
    central_difference_step,
    forward_error_bound,
    gamma,
)

__all__ = ["GradcheckResult", "directional_check", "full_jacobian_check", "numerical_vjp_check"]


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
