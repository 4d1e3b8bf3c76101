r"""Gradient checks that are exhaustive and cheap, by using softmax's structure.

- ``full_jacobian_check``: every entry of every row's D x D Jacobian by central
  differences with 2D forward calls (column j of every row perturbed at once:
  rows are independent), against the analytic Jacobian from D backward calls with
  basis upstreams. ``torch.autograd.gradcheck`` needs 2ND forward calls.
- ``directional_check``: O(1) forward calls per direction. Because J is
  symmetric, :math:`J u` from two forward calls equals ``backward(u)`` entry by
  entry, so a zero, scaled or diagonal-only backward is caught at any size
  (a single scalar :math:`\langle w, J u\rangle` would average such errors away).
- ``numerical_vjp_check``: the VJP :math:`J^\top g` by central differences,
  entry by entry (the ``central_differences`` invariant).

Step sizes are powers of two near ``tolerances.central_difference_step`` (about
the cube root of the unit roundoff), so ``x +/- h`` is exact for all but huge
logits; the steps actually taken are measured and used. Tolerances per entry:
truncation (the third derivative of softmax along a coordinate is at most 1/8,
that of the logistic function) + rounding (the forward bound at both points,
divided by the step) + the backward's own bound.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
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
    out: F64 = softmax(_f64(x))
    return out


def _result(
    numerical: F64, analytic: NDArray[Any], tol: F64, what: str, calls: tuple[int, int]
) -> GradcheckResult:
    act = _f64(analytic)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        err = np.abs(numerical - act)
        ratio = np.where(np.isnan(err), np.inf, err / np.where(tol > 0, tol, 1e-300))
    worst = np.unravel_index(int(np.argmax(ratio)), ratio.shape)
    mismatch = find_mismatch(act, numerical, tol, what=what)
    return GradcheckResult(
        passed=mismatch is None,
        max_error=float(np.nan_to_num(err, nan=np.inf).max()),
        tolerance=float(tol[worst]),
        worst=tuple(int(i) for i in worst),
        expected=float(numerical[worst]),
        actual=float(act[worst]),
        forward_calls=calls[0],
        backward_calls=calls[1],
        mismatch=mismatch,
    )


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


def _column_steps(
    impl: Implementation, x: NDArray[Any], h: float
) -> tuple[list[tuple[F64, F64, F64]], int]:
    """For each column j: (y(x + h e_j) - y(x - h e_j), step per row, rounding bound per entry)."""
    n, d = x.shape
    x64 = _f64(x)
    step = np.maximum(1.0, np.abs(x64)) * h
    out = []
    for j in range(d):
        xp, xm = x.copy(), x.copy()
        xp[:, j] = x64[:, j] + step[:, j]
        xm[:, j] = x64[:, j] - step[:, j]
        hp, hm = _f64(xp[:, j]) - x64[:, j], x64[:, j] - _f64(xm[:, j])
        if not (hp > 0).all() or not (hm > 0).all():
            raise ValueError(f"x has entries too large for a finite-difference step in {x.dtype}")
        diff = _f64(impl.forward(xp).y) - _f64(impl.forward(xm).y)
        rounding = forward_error_bound(xp, _exact(xp), x.dtype) + forward_error_bound(
            xm, _exact(xm), x.dtype
        )
        out.append((diff, np.stack([hp, hm]), rounding))
    return out, 2 * d


def numerical_vjp_check(
    forward: Any, x: NDArray[Any], dout: NDArray[Any], backward: Any = None
) -> GradcheckResult:
    r"""``backward(dout)`` against central differences of :math:`L = \sum dout \odot f(x)`.

    Per entry (r, j), with steps :math:`h_\pm` and R the range of row r of dout:
    :math:`|L'''| \le R/8` and :math:`|L''| \le R/(6\sqrt3)` along one coordinate, so

    tolerance = :math:`\max(h_\pm)^2 R/48 + |h_+ - h_-| R/(12\sqrt3)`
    + :math:`\sum_i |g_i| (E_i^+ + E_i^-) / (h_+ + h_-)` + :math:`\gamma_{D+2}` (float64 sums)
    + the backward bound.
    """
    impl = _implementation(forward, backward)
    x = _matrix(x, "x")
    g = as_float_array(dout, "dout")
    check_same_shape(g, "dout", x, "x")
    n, d = x.shape
    g64 = _f64(g)
    rng = g64.max(axis=1) - g64.min(axis=1)
    analytic = impl.vjp(x, g)
    columns, calls = _column_steps(impl, x, _power_of_two(central_difference_step(d, x.dtype)))
    numerical = np.empty((n, d))
    tol = np.empty((n, d))
    absg = np.abs(g64)
    for j, (diff, steps, rounding) in enumerate(columns):
        width = steps.sum(axis=0)
        numerical[:, j] = (g64 * diff).sum(axis=1) / width
        tol[:, j] = (
            steps.max(axis=0) ** 2 * rng * _THIRD / 6
            + np.abs(steps[0] - steps[1]) * rng * _SECOND / 2
            + (
                (absg * rounding).sum(axis=1)
                + gamma(d + 2, np.float64) * (absg * np.abs(diff)).sum(axis=1)
            )
            / width
        )
    tol += backward_error_bound(x, _exact(x), g, x.dtype)
    return _result(
        numerical, analytic, tol, "backward(dout) vs central differences", (calls + 1, 1)
    )


def full_jacobian_check(
    forward: Callable[..., Any] | Implementation,
    backward: Callable[..., Any] | None,
    x: NDArray[Any],
    *,
    dout: NDArray[Any] | None = None,
) -> GradcheckResult:
    r"""Every Jacobian entry :math:`\partial y_{ri}/\partial x_{rj}`, numerical vs analytic.

    Numerical: column j of every row perturbed at once, 2D forward calls.
    Analytic: ``backward(e_i)`` for each basis upstream e_i gives row i of J
    (D backward calls). Tolerance per entry: :math:`\max(h_\pm)^2/48 +
    |h_+ - h_-|/(12\sqrt3) + (E_i^+ + E_i^-)/(h_+ + h_-)` + the backward bound for
    :math:`g = e_i`. With ``dout`` given, ``backward(dout)`` is also compared with
    :math:`J_{num}^\top dout` (one more backward call), and the worse result is returned.
    """
    impl = _implementation(forward, backward)
    x = _matrix(x, "x")
    n, d = x.shape
    h = _power_of_two(central_difference_step(d, x.dtype))
    columns, calls = _column_steps(impl, x, h)
    cache = impl.forward(x).cache
    y = _exact(x)
    numerical = np.empty((n, d, d))
    analytic = np.empty((n, d, d))
    tol = np.empty((n, d, d))
    for j, (diff, steps, rounding) in enumerate(columns):
        width = steps.sum(axis=0)[:, None]
        numerical[:, :, j] = diff / width
        tol[:, :, j] = (
            steps.max(axis=0)[:, None] ** 2 * _THIRD / 6
            + np.abs(steps[0] - steps[1])[:, None] * _SECOND / 2
            + (rounding + gamma(1, np.float64) * np.abs(diff)) / width
        )
    for i in range(d):
        basis = np.zeros_like(x)
        basis[:, i] = 1
        analytic[:, i, :] = _f64(impl.backward(basis, cache).dx)
        tol[:, i, :] += backward_error_bound(x, y, basis, x.dtype)
    result = _result(
        numerical, analytic, tol, "Jacobian dy_i/dx_j vs central differences", (calls + 1, d)
    )
    if dout is None:
        return result
    g = as_float_array(dout, "dout")
    check_same_shape(g, "dout", x, "x")
    vjp_num = np.einsum("ri,rij->rj", _f64(g), numerical)
    vjp_tol = np.einsum("ri,rij->rj", np.abs(_f64(g)), tol)
    vjp = _result(
        vjp_num,
        impl.backward(g, cache).dx,
        vjp_tol,
        "backward(dout) vs J^T dout",
        (calls + 1, d + 1),
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
    Jacobian column contributes); with h a power of two, :math:`x \pm h u` is exact
    unless :math:`|x|` is huge (then ValueError). Along u, with R the row's range of
    u, :math:`|y_i'''| \le 2.75 R^3 y_i(\xi)` and :math:`y_i(\xi) \le e^{hR} y_i(x)`
    (cumulant expansion of :math:`\log y_i`), so per entry

    tolerance = :math:`h^2 \cdot 2.75 R^3 e^{hR} y_i / 6 + (E_i^+ + E_i^-)/2h`
    + the backward bound for g = u.
    """
    impl = _implementation(forward, backward)
    x = _matrix(x, "x")
    if isinstance(directions, bool) or not isinstance(directions, int) or directions < 1:
        raise ValueError(f"directions must be a positive int, got {directions!r}")
    n, d = x.shape
    h = _power_of_two(central_difference_step(d, x.dtype))
    rng = np.random.default_rng(seed)
    cache = impl.forward(x).cache
    x64, y = _f64(x), _exact(x)
    worst: GradcheckResult | None = None
    for k in range(directions):
        u = (rng.choice([-1, 1], size=x.shape) * rng.integers(4, 9, size=x.shape) / 8).astype(
            x.dtype
        )
        xp = (x64 + h * _f64(u)).astype(x.dtype)
        xm = (x64 - h * _f64(u)).astype(x.dtype)
        if not (
            np.array_equal(_f64(xp) - x64, h * _f64(u))
            and np.array_equal(x64 - _f64(xm), h * _f64(u))
        ):
            raise ValueError(f"x has entries too large for an exact step of {h:g} in {x.dtype}")
        numerical = (_f64(impl.forward(xp).y) - _f64(impl.forward(xm).y)) / (2 * h)
        spread = (_f64(u).max(axis=1) - _f64(u).min(axis=1))[:, None]
        tol = (
            h**2 * 2.75 * spread**3 * np.exp(h * spread) * y / 6
            + (
                forward_error_bound(xp, _exact(xp), x.dtype)
                + forward_error_bound(xm, _exact(xm), x.dtype)
            )
            / (2 * h)
            + gamma(1, np.float64) * np.abs(numerical)
            + backward_error_bound(x, y, u, x.dtype)
        )
        result = _result(
            numerical,
            impl.backward(u, cache).dx,
            tol,
            f"backward(u_{k}) vs J u_{k}",
            (2 * k + 3, k + 1),
        )
        if worst is None or (worst.passed and not result.passed):
            worst = result
    assert worst is not None
    return GradcheckResult(
        **{**worst.__dict__, "forward_calls": 2 * directions + 1, "backward_calls": directions}
    )
