r"""The trusted reference: softmax, log-softmax and their derivatives.

All functions are pure (inputs are never written to, no global state), accept
float32 or float64 arrays of any rank >= 1, reduce along ``axis`` (default -1)
and return an array of the input's dtype.

Math, along the reduction axis with :math:`m = \max_j x_j`:

- ``softmax``: :math:`y_i = e^{x_i - m} / \sum_j e^{x_j - m}`. Subtracting the
  maximum leaves the result unchanged mathematically and keeps every ``exp``
  argument <= 0, so nothing overflows for any finite input.
- ``softmax_backward`` (vector-Jacobian product): with the Jacobian
  :math:`J = \operatorname{diag}(y) - y y^\top`,
  :math:`dx = J^\top g = y \odot (g - \langle g, y \rangle)`.
- ``softmax_jvp``: :math:`J t = y \odot (t - \langle t, y \rangle)`; the same
  formula, because :math:`J` is symmetric.
- ``log_softmax``: :math:`x_i - m - \log \sum_j e^{x_j - m}`.
- ``log_softmax_backward``: with :math:`z` the log-softmax output,
  :math:`dx = g - e^{z} \sum_j g_j`.

Accuracy (derived in docs/tolerances.md, tested against mpmath): for a row of
length :math:`D`, unit roundoff :math:`u` of the dtype and :math:`t_i = m - x_i`,

.. math:: |\hat y_i - y_i| \le \gamma_{D + 10 + \ln D + t_i}\, y_i + \lambda,

where :math:`\gamma_n = nu / (1 - nu)` and :math:`\lambda` is the dtype's
smallest normal number (the only absolute error, from underflow). So each
entry is accurate to a few ulps relative to itself, plus ``t_i`` ulps for
entries far below the maximum, which are tiny.

Non-finite input, per row (IEEE semantics; tested):

- a row containing NaN or ``+inf`` gives a row of NaN (``inf - inf`` is undefined);
- ``-inf`` entries get probability exactly 0 (masking), as long as one entry is finite;
- a row of only ``-inf`` gives a row of NaN (0 / 0).

The backward functions propagate non-finite ``dout`` or ``y`` through the
formula above, per row, without raising.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from softmax_verify._validate import as_float_array, check_axis, check_same_shape

__all__ = ["log_softmax", "log_softmax_backward", "softmax", "softmax_backward", "softmax_jvp"]

FloatArray = NDArray[np.floating[Any]]

# Non-finite rows are documented results, not errors: keep numpy quiet about them.
_QUIET = {"over": "ignore", "invalid": "ignore", "divide": "ignore", "under": "ignore"}


def softmax(x: FloatArray, axis: int = -1) -> FloatArray:
    """Softmax of ``x`` along ``axis``; stable for every finite input (see module docs)."""
    array = as_float_array(x, "x")
    ax = check_axis(axis, array, "x")
    with np.errstate(**_QUIET):
        # One owned buffer: shifted logits, then exps in place, then normalized in place.
        out = array - array.max(axis=ax, keepdims=True)
        np.exp(out, out=out)
        out /= out.sum(axis=ax, keepdims=True)
    return out


def _vjp(g: FloatArray, y: FloatArray, ax: int) -> FloatArray:
    """``y * (g - <g, y>)`` along ``ax``; the VJP and the JVP of softmax alike."""
    with np.errstate(**_QUIET):
        inner = (g * y).sum(axis=ax, keepdims=True)
        out = g - inner
        out *= y
    return out


def softmax_backward(dout: FloatArray, y: FloatArray, axis: int = -1) -> FloatArray:
    """Gradient of ``L = sum(dout * softmax(x))`` w.r.t. ``x``, given ``y = softmax(x)``.

    ``dx = y * (dout - sum(dout * y, axis))``.
    """
    g = as_float_array(dout, "dout")
    probs = as_float_array(y, "y")
    check_same_shape(g, "dout", probs, "y")
    return _vjp(g, probs, check_axis(axis, g, "dout"))


def softmax_jvp(tangent: FloatArray, y: FloatArray, axis: int = -1) -> FloatArray:
    """Directional derivative of softmax at the point whose output is ``y``.

    ``J t = y * (t - sum(t * y, axis))``; equal to the VJP because J is symmetric.
    """
    t = as_float_array(tangent, "tangent")
    probs = as_float_array(y, "y")
    check_same_shape(t, "tangent", probs, "y")
    return _vjp(t, probs, check_axis(axis, t, "tangent"))


def log_softmax(x: FloatArray, axis: int = -1) -> FloatArray:
    """``x - logsumexp(x)`` along ``axis``, computed with the maximum subtracted."""
    array = as_float_array(x, "x")
    ax = check_axis(axis, array, "x")
    with np.errstate(**_QUIET):
        out = array - array.max(axis=ax, keepdims=True)
        out -= np.log(np.exp(out).sum(axis=ax, keepdims=True))
    return out


def log_softmax_backward(dout: FloatArray, y: FloatArray, axis: int = -1) -> FloatArray:
    """Gradient of ``L = sum(dout * log_softmax(x))`` given ``y = log_softmax(x)``.

    ``dx = dout - exp(y) * sum(dout, axis)``.
    """
    g = as_float_array(dout, "dout")
    logp = as_float_array(y, "y")
    check_same_shape(g, "dout", logp, "y")
    ax = check_axis(axis, g, "dout")
    with np.errstate(**_QUIET):
        out = np.exp(logp)
        out *= g.sum(axis=ax, keepdims=True)
        np.subtract(g, out, out=out)
    return out
