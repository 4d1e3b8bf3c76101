r"""Gradient checks that are exhaustive and cheap, by using softmax's structure.

- ``full_jacobian_check``: every entry of every row's D x D Jacobian by central
  differences of 2D perturbed copies of x (column j of every row perturbed at once:
  rows are independent), against the analytic Jacobian from the D basis upstreams;
  the copies and the upstreams go to the forward and backward in a few stacked
  calls. ``torch.autograd.gradcheck`` needs 2ND forward calls.
- ``directional_check``: two forward calls per direction. Because J is
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

from softmax_verify._directions import (
    _draw_eighths,
    _each_direction,
    _Evaluated,
    _row_blocks,
    _step_for_magnitude,
)
from softmax_verify._finite_differences import (
    _column_chunks,
    _column_differences,
    _power_of_two,
    _rounding,
    _steps,
)
from softmax_verify._oracle import f64 as _f64
from softmax_verify._oracle import softmax as _exact
from softmax_verify._parallel import map_blocks
from softmax_verify._tally import (
    F64,
    GradcheckResult,
    _jacobian_order,
    _ratio,
    _result,
    _Tally,
)
from softmax_verify._validate import CHECKED_DTYPES, as_float_array, check_same_shape
from softmax_verify.conventions import implementation_from, is_layer
from softmax_verify.implementation import Implementation
from softmax_verify.tolerances import (
    _backward_bound,
    _eta_times,
    _tiny,
    backward_error_bound,
    central_difference_step,
    chain,
    forward_relative_bound,
    gamma,
)

__all__ = ["GradcheckResult", "directional_check", "full_jacobian_check", "numerical_vjp_check"]


def _implementation(forward: Any, backward: Any) -> Implementation:
    if isinstance(forward, Implementation):
        return forward
    if backward is None and not is_layer(forward):
        raise TypeError("backward must be given (a callable), got None")
    impl, _ = implementation_from(forward, backward, timeout=None)
    return impl


def _matrix(x: object, name: str) -> NDArray[Any]:
    array = as_float_array(x, name, dtypes=CHECKED_DTYPES)
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
    :math:`E^\pm` the forward bound at the two points (see ``_rounding``):
    :math:`|L'''| \le R/8` and :math:`|L''| \le R/(6\sqrt3)` along one coordinate, so

    tolerance = :math:`\max(h_\pm)^2 R/48 + |h_+ - h_-| R/(12\sqrt3)`
    + :math:`\sum_i |g_i| (E_i^+ + E_i^-) / (h_+ + h_-)`
    + :math:`\gamma_{D+3} \sum_i |g_i| |\Delta_i| / (h_+ + h_-)` + the backward bound.

    :math:`\gamma_{D+3}`: the estimate :math:`\sum_i g_i \Delta_i / (h_+ + h_-)` is taken in
    float64 with, per term, the subtraction :math:`\Delta_i` of the two outputs, the
    product, D - 1 additions, the width and the division.

    The perturbed inputs go to the forward in stacks of columns (see
    ``_column_differences``): a few forward calls rather than 2D.
    """
    impl = _implementation(forward, backward)
    x = _matrix(x, "x")
    g = as_float_array(dout, "dout", dtypes=CHECKED_DTYPES)
    check_same_shape(g, "dout", x, "x")
    n, d = x.shape
    g64 = _f64(g)
    absg = np.abs(g64)
    steps = _steps(x, _power_of_two(central_difference_step(d, x.dtype)))  # may refuse x
    analytic = impl.vjp(x, g)
    y = _exact(x)
    eta = forward_relative_bound(x, x.dtype, moved=steps.largest)
    numerical, spread = np.empty((n, d)), np.empty((n, d))
    calls = 1
    for start, stop, diff in _column_differences(impl, x, steps):
        calls += 1
        numerical[:, start:stop] = np.einsum("ri,kri->rk", g64, diff)
        spread[:, start:stop] = np.einsum("ri,kri->rk", absg, np.abs(diff))
    numerical /= steps.width
    # Per row, sum_i |g_i| (E_i^+ + E_i^-): the same for every column (see _rounding).
    rounding = np.einsum("ri,ri->r", absg, _rounding(eta, y, steps.largest, x.dtype))
    tol = steps.truncation() * (g64.max(axis=1) - g64.min(axis=1))[:, None]
    tol += (rounding[:, None] + gamma(d + 3, np.float64) * spread) / steps.width
    tol += _backward_bound(y, absg, eta, x.dtype)
    return _result(numerical, analytic, tol, "backward(dout) vs central differences", (calls, 1))


def _analytic_jacobian(impl: Implementation, x: NDArray[Any]) -> tuple[F64, int]:
    """``J[i, r, j] = backward(e_i)[r, j]`` (D, N, D), and the number of stacked calls.

    The D basis upstreams go to the backward in stacks, with the cache of the forward of
    as many stacked copies of x (rows are independent). Both stacks are scratch.
    """
    n, d = x.shape
    analytic = np.empty((d, n, d))
    chunks = _column_chunks(n, d, 1)
    for start, stop in chunks:
        c = stop - start
        copies = np.empty((c, n, d), dtype=x.dtype)
        copies[:] = x
        basis = np.zeros((c, n, d), dtype=x.dtype)
        basis[np.arange(c), :, np.arange(start, stop)] = 1
        cache = impl.forward(copies.reshape(c * n, d), scratch=True).cache
        dx = impl.backward(basis.reshape(c * n, d), cache, scratch=True, watch_cache=False).dx
        analytic[start:stop] = dx.reshape(c, n, d)
    return analytic, len(chunks)


def full_jacobian_check(
    forward: Callable[..., Any] | Implementation,
    backward: Callable[..., Any] | None,
    x: NDArray[Any],
    *,
    dout: NDArray[Any] | None = None,
) -> GradcheckResult:
    r"""Every Jacobian entry :math:`\partial y_{ri}/\partial x_{rj}`, numerical vs analytic.

    Numerical: column j of every row perturbed at once, 2D perturbed copies of x, passed
    to the forward in stacks (a few calls; see ``_column_differences``). Analytic: row i
    of J is ``backward(e_i)`` for the basis upstream e_i (see ``_analytic_jacobian``).

    Tolerance per entry: the numerical part :math:`T_{ij} = \max(h_\pm)^2/48 +
    |h_+ - h_-|/(12\sqrt3) + (E_i^+ + E_i^-)/(h_+ + h_-) + \gamma_3 |N_{ij}|`
    (:math:`\gamma_3`: the float64 subtraction of the outputs, the width and the
    division) + the backward bound for :math:`g = e_i`, which is, with P = :math:`y_i`
    and Q = :math:`y_i \eta_i` in ``backward_error_bound``,
    :math:`y_j [(\eta_j + \gamma_{D+4})(\delta_{ij} + y_i) + y_i \eta_i] + (D + 5)\lambda`;
    :math:`\eta` is taken at the farthest perturbed point (``moved``), an upper bound.

    With ``dout`` given, ``backward(dout)`` (after ``forward(x)``) is also compared with
    :math:`N^\top dout`, within :math:`\sum_i |g_i| T_{ij} + \gamma_D \sum_i |g_i|
    |N_{ij}|` (the float64 inner product) + the backward bound for g = dout; the worse
    result is returned.
    """
    impl = _implementation(forward, backward)
    x = _matrix(x, "x")
    g = None if dout is None else as_float_array(dout, "dout", dtypes=CHECKED_DTYPES)
    if g is not None:
        check_same_shape(g, "dout", x, "x")
    n, d = x.shape
    steps = _steps(x, _power_of_two(central_difference_step(d, x.dtype)))
    analytic, stacks = _analytic_jacobian(impl, x)
    y = _exact(x)
    eta = forward_relative_bound(x, x.dtype, moved=steps.largest)
    rounding = _rounding(eta, y, steps.largest, x.dtype)  # [r, i]
    truncation = steps.truncation()  # [r, j]
    y_eta = y * eta
    # Compared column chunk by column chunk in the layout [j, r, i] = dy_ri/dx_rj.
    by_column = analytic.transpose(2, 1, 0)
    tally = _Tally("Jacobian dy_i/dx_j vs central differences", (d, n, d))
    vjp_num, vjp_tol = np.zeros((n, d)), np.zeros((n, d))
    floor = (d + 5) * _tiny(x.dtype)
    forward_calls = stacks
    for start, stop, diff in _column_differences(impl, x, steps):
        forward_calls += 1
        c, cols = stop - start, slice(start, stop)
        width = steps.width[:, cols].T[:, :, None]  # (c, N, 1)
        numerical = diff / width
        part = rounding / width
        part += truncation[:, cols].T[:, :, None]
        part += gamma(3, np.float64) * np.abs(numerical)
        y_j = y[:, cols].T[:, :, None]
        scale = y_j * (eta[:, cols].T[:, :, None] + chain(d + 4, x.dtype))
        tol = scale * y
        tol += y_j * y_eta
        tol[np.arange(c), :, np.arange(start, stop)] += scale[:, :, 0]  # delta_ij
        tol += floor
        tol += part
        tally.add(numerical, by_column[cols], tol, start)
        if g is not None:
            absg = np.abs(_f64(g))
            vjp_num[:, cols] = np.einsum("ri,kri->rk", _f64(g), numerical)
            vjp_tol[:, cols] = np.einsum("ri,kri->rk", absg, part) + gamma(
                d, np.float64
            ) * np.einsum("ri,kri->rk", absg, np.abs(numerical))
    result = _jacobian_order(tally.result(forward_calls, stacks))
    if g is None:
        return result
    vjp_tol += backward_error_bound(x, y, g, x.dtype)
    vjp = _result(
        vjp_num,
        impl.vjp(x, g),
        vjp_tol,
        "backward(dout) vs J^T dout",
        (forward_calls + 1, stacks + 1),
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

    Directions have entries :math:`\pm k/8`, k in 4..7 (every entry O(1), so every
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
    - rounding: :math:`(E_i^+ + E_i^-)/2h \le (\eta_i G y_i + \lambda)/h`, with
      :math:`\eta` at x moved by :math:`h + \delta_{max}` (``forward_relative_bound``;
      :math:`\delta_{max}` is half an ulp of :math:`\max|x| + h`, the most any entry of
      x' moves), so that it holds at :math:`x' \pm h u` (computed as ``_eta_times``);
    - the float64 subtraction of the two outputs: :math:`\gamma_1` times their difference,
      which for a correct forward is at most :math:`2hRGy_i + E_i^+ + E_i^-`
      (:math:`|\partial_t y_i(x' + tu)| = y_i |u_i - \bar u| \le R G y_i`), so
      :math:`\gamma_1 R G y_i` and the rounding term times :math:`1 + \gamma_1`
      (dividing by 2h is exact);
    - moving from x to x': :math:`|(J(x') u)_i - (J(x) u)_i| \le 4 R \delta e^{2\delta}
      y_i(x)` (the derivative of :math:`y_i (u_i - \bar u)` along
      :math:`x' - x` is at most :math:`4 R \delta y_i`); zero where no entry moved;
    - + the backward bound at x for g = u, with the same :math:`\eta` (an upper bound).

    Calls: ``forward(x)`` once for the cache, then per direction ``backward(u)`` and the
    forward at each of the two points: whole (N, D) arrays, so the code under test runs at
    the size and shape it is checked at. u and the points are scratch, handed over without
    copies, in one buffer (see ``_directions._evaluate``). Each direction is compared as
    soon as its calls return, block by block of rows, in cache, so memory does not grow
    with the number of directions past two: with several, the float64 reference at x is
    kept (one array of x's size), and :math:`\eta` is recomputed per direction, which
    costs less than keeping more arrays; the blocks give what one pass over the whole
    would. Of several directions, the failing one with the largest error-to-tolerance
    ratio at its worst entry is returned, else the passing one with the largest ratio.
    """
    impl = _implementation(forward, backward)
    x = _matrix(x, "x")
    if isinstance(directions, bool) or not isinstance(directions, int):
        raise TypeError(f"directions must be a positive int, got {type(directions).__name__}")
    if directions < 1:
        raise ValueError(f"directions must be a positive int, got {directions!r}")
    n, d = x.shape
    h0 = _power_of_two(central_difference_step(d, x.dtype))
    largest = float(max(x.max(), -x.min()))  # max |x| without an |x| temporary
    h = _step_for_magnitude(h0, largest, x.dtype)
    if h > 8 * h0:
        raise ValueError(
            f"x has entries too large for a finite-difference step of {h0:g} in {x.dtype}: "
            f"the ulp of |x| = {largest:g} exceeds it"
        )
    rng = np.random.default_rng(seed)
    draws = [_draw_eighths(rng, x.shape) for _ in range(directions)]
    moved = h + 0.5 * float(np.spacing(np.asarray(largest + h, dtype=x.dtype)))
    tiny = _tiny(x.dtype)
    subtraction = float(gamma(1, np.float64))  # fl(out+ - out-) in float64
    backward_gamma = float(chain(d + 4, x.dtype))  # the backward's own bound
    rounding = (1 + subtraction) / h  # the forward's bounds at both points, over 2h

    # The reference at x, kept for the later directions when there are several: it is the
    # costliest pass of a comparison (a float64 exp per entry, which numpy leaves to libm
    # without AVX-512), and one array of x's size costs less than recomputing it. Until
    # the first comparison fills it, it holds the first backward's snapshot of the cache,
    # which would otherwise take fresh memory of the same size.
    held = np.empty((n, d)) if directions > 1 else None

    def compare_block(k: int, one: _Evaluated, name: str, rows: tuple[int, int]) -> _Tally:
        a, b = rows
        # The reference at x and eta moved as far as x' +/- h u.
        if held is None:
            y = _exact(x[a:b])
        else:
            y = held[a:b]
            if k == 0:
                y[...] = _exact(x[a:b])
        y_eta = _eta_times(x[a:b], y, x.dtype, moved)
        eighths, shift, numerical, dx = one.eighths, one.moved.shift, one.numerical, one.dx
        # |u| and the range of u per row, rebuilt from 8u (u itself was handed over).
        g = np.abs(eighths[a:b], dtype=np.float64)
        g *= 0.125
        spread = eighths[a:b].max(axis=1) - eighths[a:b].min(axis=1).astype(np.float64)
        spread *= 0.125
        delta = shift[a:b, 0]
        grow = np.exp(h * spread + 2 * delta)  # G: y_i <= G y_i(x) on the whole segment
        p = np.einsum("ri,ri->r", g, y)
        q = np.einsum("ri,ri->r", g, y_eta)
        # tol = y [G h^2 2.75 R^3 / 6 + gamma_1 R G + 4 R delta e^{2 delta} + gamma p + q]
        #     + y eta [(1 + gamma_1) G / h + p] + y (eta + gamma) |u| + constants.
        on_y = grow * h**2 * (2.75 / 6) * spread**3 + backward_gamma * p + q
        on_y += spread * grow * subtraction
        on_y += 4 * spread * delta * np.exp(2 * delta)
        tol = y * on_y[:, None]
        tol += y_eta * (grow * rounding + p)[:, None]
        weight = np.multiply(y, backward_gamma, out=None if held is not None else y)
        weight += y_eta  # y (eta + gamma_{D+4})
        tol += np.multiply(weight, g, out=g)
        tol += tiny * rounding + (d + 5) * tiny  # lambda ||u||_inf <= lambda: |u_i| <= 1
        tally = _Tally(name, x.shape)
        tally.add(numerical[a:b], dx[a:b], tol, a)
        return tally

    def compare_direction(k: int, one: _Evaluated) -> _Tally:
        name = f"backward(u_{k}) vs J u_{k}"
        blocks = map_blocks(lambda rows: compare_block(k, one, name, rows), _row_blocks(n, d))
        tally = blocks[0]
        for part in blocks[1:]:
            tally.merge(part)
        return tally

    tallies, forward_calls, backward_calls = _each_direction(
        impl, x, draws, h, largest, compare_direction, free_until_compared=held
    )
    results = [t.result(forward_calls, backward_calls) for t in tallies]
    failing = [r for r in results if not r.passed]
    return max(failing or results, key=_ratio)
