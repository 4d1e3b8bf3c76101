r"""The trusted float64 oracle: textbook softmax, log_softmax and their VJPs.

Every invariant, gradient check, stage check and diagnosis compares against these
functions, never against the bundled kernels of ``softmax_verify.bundled.reference``: those are
fast (blocked, multithreaded, with a shortcut that skips the shift) and are themselves
a target that is tested against this oracle and against mpmath. Here each function is
its formula and nothing else, along the last axis, in float64, with the row maximum
:math:`m = \max_j x_j` subtracted so that no ``exp`` overflows:

- ``softmax``: :math:`y_i = e^{x_i - m} / \sum_j e^{x_j - m}`;
- ``log_softmax``: :math:`z_i = (x_i - m) - \log \sum_j e^{x_j - m}`;
- ``softmax_vjp``: :math:`dx = y \odot (g - \langle g, y\rangle)` (:math:`J =
  \operatorname{diag}(y) - y y^\top`, symmetric, so also the JVP);
- ``log_softmax_vjp``: :math:`dx = g - e^{z} \sum_j g_j` (:math:`J = I - \mathbf 1
  y^\top`).

Accuracy: float64 throughout, so each result meets the float64 bound of
``softmax_verify.tolerances`` (``forward_error_bound(x, y, float64)`` and the others);
the ``reference_*`` tolerances add that bound to the bound of the dtype under test.
Extended precision (``np.longdouble``) is not used: it is plain float64 on some
platforms, so a verdict cannot rely on it, and the float64 bound is already counted.
Non-finite rows follow IEEE arithmetic (a NaN or ``+inf`` logit gives a NaN row, a row
of only ``-inf`` gives NaN, a ``-inf`` logit beside a finite one gives exactly 0),
without warnings.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["f64", "log_softmax", "log_softmax_vjp", "softmax", "softmax_vjp"]

F64 = NDArray[np.float64]


def f64(a: ArrayLike) -> F64:
    """``a`` as float64: exact for every float dtype the verifier checks (a view if it is one)."""
    return np.asarray(a, dtype=np.float64)


def _shifted(x: ArrayLike) -> F64:
    """:math:`x - \\max_j x_j` per row, in a new float64 array."""
    x64 = f64(x)
    out: F64 = x64 - x64.max(axis=-1, keepdims=True)
    return out


def softmax(x: NDArray[Any]) -> F64:
    r""":math:`y_i = e^{x_i - m} / \sum_j e^{x_j - m}` along the last axis, in float64."""
    with np.errstate(all="ignore"):
        e = np.exp(_shifted(x))
        e /= e.sum(axis=-1, keepdims=True)
    return e


def log_softmax(x: NDArray[Any]) -> F64:
    r""":math:`z_i = (x_i - m) - \log \sum_j e^{x_j - m}` along the last axis, in float64."""
    with np.errstate(all="ignore"):
        z = _shifted(x)
        z -= np.log(np.exp(z).sum(axis=-1, keepdims=True))
    return z


def softmax_vjp(g: NDArray[Any], y: NDArray[Any]) -> F64:
    r""":math:`dx = y \odot (g - \langle g, y\rangle)` per row, for ``y = softmax(x)``."""
    g64, y64 = f64(g), f64(y)
    with np.errstate(all="ignore"):
        out: F64 = g64 - (g64 * y64).sum(axis=-1, keepdims=True)
        out *= y64
    return out


def log_softmax_vjp(g: NDArray[Any], z: NDArray[Any]) -> F64:
    r""":math:`dx = g - e^{z} \sum_j g_j` per row, for ``z = log_softmax(x)``."""
    g64 = f64(g)
    with np.errstate(all="ignore"):
        out: F64 = g64 - np.exp(f64(z)) * g64.sum(axis=-1, keepdims=True)
    return out
