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

# Non-finite rows are documented results, not errors: numpy is kept quiet about them
# (``np.errstate(all="ignore")``: overflow, invalid, divide and underflow).

#: Bytes of each operand per row block of the blocked kernels. The blocks of the input and
#: the output (three operands in the backward) stay in cache while every pass over them
#: runs, so main memory is read once and written once, as by one ``np.exp``; blocks are
#: large enough (1 MiB: measured best from 128 KiB up) that the per-call overhead of the
#: few numpy calls per block is small.
_BLOCK_BYTES = 1 << 20


def _rows(array: FloatArray, ax: int) -> FloatArray | None:
    """A 2-D (rows, D) view of ``array`` with the reduction axis ``ax`` last and unit-stride.

    None when there is no such view (the reduction axis is strided or not innermost);
    the callers then take the general path.
    """
    d = array.shape[ax]
    if array.ndim == 2 and ax == 0 and array.flags.f_contiguous and d > 1:
        array = array.T  # Fortran order reducing over axis 0: rows of the transpose
    elif ax != array.ndim - 1:
        return None
    if d > 1 and array.strides[-1] != array.itemsize:
        return None
    if array.ndim == 2:
        return array
    if array.ndim == 1 or array.flags.c_contiguous:
        return array.reshape(-1, d)  # a view: no copy for these layouts
    return None


def _empty_like_rows(array: FloatArray, ax: int) -> tuple[FloatArray, FloatArray]:
    """An owned output of ``array``'s shape and dtype, and its (rows, D) view as ``_rows``."""
    d = array.shape[ax]
    if array.ndim == 2 and ax == 0 and array.flags.f_contiguous and d > 1:
        out = np.empty(array.shape, dtype=array.dtype, order="F")
        return out, out.T
    out = np.empty(array.shape, dtype=array.dtype)
    return out, out.reshape(-1, d)


def _block_rows(d: int, itemsize: int) -> int:
    return max(1, _BLOCK_BYTES // (d * itemsize))


def _softmax_rows(x: FloatArray, out: FloatArray) -> None:
    """Row softmax of the (N, D) ``x`` into ``out``, block by block of rows.

    Per row the operations are those of the general path, in the same order (max,
    subtract, exp, pairwise sum, divide), so the results are identical to it.
    """
    n, d = x.shape
    step = _block_rows(d, x.itemsize)
    peak = np.empty((min(step, n), 1), dtype=x.dtype)
    total = np.empty_like(peak)
    for start in range(0, n, step):
        stop = min(start + step, n)
        xb, ob = x[start:stop], out[start:stop]
        m, s = peak[: stop - start], total[: stop - start]
        np.maximum.reduce(xb, axis=1, keepdims=True, out=m)  # what max() calls, less overhead
        np.subtract(xb, m, out=ob)
        np.exp(ob, out=ob)
        np.add.reduce(ob, axis=1, keepdims=True, out=s)  # sum()'s pairwise summation
        np.divide(ob, s, out=ob)  # a division: one rounding (the bound's budget allows 2u)


def _vjp_rows(g: FloatArray, y: FloatArray, out: FloatArray) -> None:
    """``y * (g - <g, y>)`` per row of (N, D) arrays into ``out``, block by block of rows.

    The inner products come from ``einsum`` without a temporary: D - 1 additions in an
    order other than the general path's pairwise sum, so a result can differ from it by
    rounding, within the same bound (the bound allows any order of the D - 1 additions).
    """
    n, d = g.shape
    step = _block_rows(d, g.itemsize)
    inner = np.empty(min(step, n), dtype=g.dtype)
    for start in range(0, n, step):
        stop = min(start + step, n)
        gb, yb, ob = g[start:stop], y[start:stop], out[start:stop]
        ib = inner[: stop - start]
        np.einsum("ij,ij->i", gb, yb, out=ib)
        np.subtract(gb, ib[:, None], out=ob)
        np.multiply(ob, yb, out=ob)


def softmax(x: FloatArray, axis: int = -1) -> FloatArray:
    """Softmax of ``x`` along ``axis``; stable for every finite input (see module docs)."""
    array = as_float_array(x, "x")
    ax = check_axis(axis, array, "x")
    rows = _rows(array, ax)
    with np.errstate(all="ignore"):
        if rows is not None:
            result, result_rows = _empty_like_rows(array, ax)
            _softmax_rows(rows, result_rows)
            return result
        # General path (no row view: the reduction axis is strided or not innermost):
        # one owned buffer, shifted logits, then exps in place, then normalized in place.
        out: FloatArray = array - array.max(axis=ax, keepdims=True)
        np.exp(out, out=out)
        out /= out.sum(axis=ax, keepdims=True)
    return out


def _vjp(g: FloatArray, y: FloatArray, ax: int) -> FloatArray:
    """``y * (g - <g, y>)`` along ``ax``; the VJP and the JVP of softmax alike."""
    g_rows, y_rows = _rows(g, ax), _rows(y, ax)
    with np.errstate(all="ignore"):
        if g_rows is not None and y_rows is not None:
            result, result_rows = _empty_like_rows(g, ax)
            _vjp_rows(g_rows, y_rows, result_rows)
            return result
        inner = (g * y).sum(axis=ax, keepdims=True)
        out: FloatArray = g - inner
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
    with np.errstate(all="ignore"):
        out: FloatArray = array - array.max(axis=ax, keepdims=True)
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
    with np.errstate(all="ignore"):
        out: FloatArray = np.exp(logp)
        out *= g.sum(axis=ax, keepdims=True)
        np.subtract(g, out, out=out)
    return out
