r"""The bundled reference implementation: fast softmax, log-softmax and their derivatives.

A target like any other (``softmax-verify check`` with no target checks it): the
verifier's own exact values come from the plain float64 oracle
(``softmax_verify.core.oracle``), against which these kernels are tested too.

All functions are pure (inputs are never written to, no global state), accept
float32 or float64 arrays of any rank >= 1, reduce along ``axis`` (default -1)
and return an array of the input's dtype. Half-precision arrays (float16, and bfloat16
with ml_dtypes) are computed in float32 and the result rounded once to their dtype: the
production kernel that the default accumulation model describes (docs/tolerances.md).
``softmax`` splits large arrays (8 MiB and more) into groups of rows computed on a few
threads; every row's result depends on that row alone, so it is the same on any number of
threads.

Math, along the reduction axis with :math:`m = \max_j x_j`:

- ``softmax``: :math:`y_i = e^{x_i - m} / \sum_j e^{x_j - m}`. Subtracting the
  maximum leaves the result unchanged mathematically and keeps every ``exp``
  argument <= 0, so nothing overflows for any finite input. (Where the row
  sum of :math:`e^{x_j}` is safely inside the dtype's range, the blocked kernel
  skips the subtraction, which only removes a rounding; see ``_softmax_rows``.)
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

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from numpy.typing import NDArray

from softmax_verify.core.dtypes import is_half
from softmax_verify.core.parallel import map_blocks, segments
from softmax_verify.core.validate import (
    CHECKED_DTYPES,
    as_float_array,
    check_axis,
    check_same_shape,
)

__all__ = ["log_softmax", "log_softmax_backward", "softmax", "softmax_backward", "softmax_jvp"]

FloatArray = NDArray[np.floating[Any]]

# Non-finite rows are documented results, not errors: numpy is kept quiet about them
# (``np.errstate(all="ignore")``: overflow, invalid, divide and underflow).

#: Bytes of each operand per row block of the blocked kernels. Every pass over a block after
#: the first finds it in cache, so main memory is read once and written once, as by one
#: ``np.exp``. Half a megabyte fits a typical L2; larger blocks gained nothing, and smaller
#: ones lose to the fixed cost of each numpy call (measurements: bench/results.md, notes).
_BLOCK_BYTES = 1 << 19

#: From this row length on, the per-row broadcasts (``ob * r[:, None]``, ``gb - c[:, None]``)
#: run with a ufunc buffer no longer than a row. Otherwise numpy (2.4, measured) coalesces
#: rows into buffer-sized chunks and copies the broadcast column into its buffer, which makes
#: such a pass about twice as slow as a plain elementwise product; below ~256 entries one
#: inner loop per row costs more than that copy (also measured).
_ROW_LOOP_MIN = 256

#: Longest inner product given to one BLAS dot (``np.vecdot``): OpenBLAS spreads dots of more
#: than 10 000 entries over threads of its own; the reference's threads are its own too
#: (``_in_parallel``), so each BLAS call stays on the thread that makes it.
_DOT_CHUNK = 4096

#: Row blocks per thread below which softmax stays on its caller's thread: on less work,
#: starting and joining a pool costs more than the second thread saves. The backward is not
#: split: it is bound by memory, so a second thread on a sibling core adds nothing
#: (measurements: bench/results.md, notes).
_MIN_BLOCKS_PER_THREAD = 8


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


@contextmanager
def _row_by_row(d: int) -> Iterator[None]:
    """Run per-row broadcasts over rows of length ``d`` one row per inner loop (see above).

    numpy's ufunc buffer size is context-local, like ``np.errstate``; it is restored on exit.
    """
    if d < _ROW_LOOP_MIN:
        yield
        return
    previous = np.setbufsize(_ROW_LOOP_MIN)  # a multiple of 16, as numpy requires
    try:
        yield
    finally:
        np.setbufsize(previous)


def _shifted_softmax(array: FloatArray, ax: int) -> FloatArray:
    """``exp(x - m) / sum(exp(x - m))`` along ``ax`` into a new array: the textbook form."""
    out: FloatArray = array - array.max(axis=ax, keepdims=True)
    np.exp(out, out=out)
    out /= out.sum(axis=ax, keepdims=True)
    return out


def _direct_sum_range(dtype: np.dtype[Any]) -> tuple[float, float]:
    """The row sums ``s`` for which the unshifted softmax ``e_i * fl(1/s)`` is within the bound.

    ``s <= 1/lambda`` keeps every ``e_i`` finite and ``fl(1/s)`` normal (so it rounds once,
    relative). ``s >= sqrt(eps)``: an ``exp`` that underflows errs by at most 2 sigma =
    2 eps lambda (2 ulps of a subnormal), and ``1/s`` scales that to <= 2 sqrt(eps) lambda,
    well inside the bound's absolute term lambda.
    """
    finfo = np.finfo(dtype)
    return float(finfo.eps) ** 0.5, 1 / float(finfo.smallest_normal)


def _softmax_rows(x: FloatArray, out: FloatArray) -> None:
    """Row softmax of the (N, D) ``x`` into ``out``, block by block of rows.

    Softmax is shift invariant, so a row is computed without its maximum when that is
    safe: ``e_j = exp(x_j)``, ``s = sum_j e_j`` (D - 1 additions, see ``_row_dots``) and
    ``y_i = e_i * fl(1/s)`` (``e_1 / s`` when D = 1). That skips two passes (the maximum
    and the subtraction) and stays within the bound (docs/tolerances.md: the exp arguments
    carry no shift error; the reciprocal and the product round once each) whenever ``s`` is
    in ``_direct_sum_range``: for any row whose largest logit is moderate. The other rows
    (overflow, NaN, +-inf, or every logit very negative) get ``e_j = exp(x_j - m)`` as in
    the general path, which also gives them their IEEE results, then the same sum and
    normalization. That rule depends on the row alone, so a row's result never depends on
    the other rows, nor on the order of work below.

    Rows needing the shift are found after the fact (their ``s``) and recomputed; after a
    block that had some, the next block takes the maxima first and shifts the rows whose
    maximum already settles it, so that arrays of such rows do not pay ``exp`` twice.
    """
    n, d = x.shape
    step = _block_rows(d, x.itemsize)
    low, high = _direct_sum_range(x.dtype)
    # e^m <= s <= D e^m, so a maximum m outside [m_low, m_high] puts s outside [low, high]
    # (with a factor e to spare for the roundings of exp and of the sum).
    m_low, m_high = math.log(low / d) - 1, math.log(high) + 1
    sums = np.empty(min(step, n), dtype=x.dtype)
    inverse = np.empty((min(step, n), 1), dtype=x.dtype)
    ones = np.ones(min(d, _DOT_CHUNK), dtype=x.dtype)
    look_first = False
    with _row_by_row(d):
        for start in range(0, n, step):
            stop = min(start + step, n)
            xb, ob, s = x[start:stop], out[start:stop], sums[: stop - start]
            shifted = None
            if look_first:
                peaks = np.maximum.reduce(xb, axis=1)
                shifted = ~((peaks >= m_low) & (peaks <= m_high))  # NaN too
                np.subtract(xb, np.where(shifted, peaks, 0)[:, None], out=ob)  # x - 0 is x
                np.exp(ob, out=ob)
            else:
                np.exp(xb, out=ob)
            _row_dots(ob, ones, s)  # a dot with ones: faster than add.reduce on short rows
            look_first = shifted is not None and bool(shifted.any())
            if not (s.min() >= low and s.max() <= high):  # NaN compares False
                redo = ~((s >= low) & (s <= high))
                if shifted is not None:
                    redo &= ~shifted
                rows = np.flatnonzero(redo)
                if rows.size:  # rows the maxima did not settle (or not looked at): recompute
                    look_first = True
                    _shifted_rows(xb, rows, ones, ob, s)
            if d == 1:  # e / e: exactly 1, so a single column's Jacobian is exactly 0
                np.divide(ob, s[:, None], out=ob)
                continue
            r = inverse[: stop - start]
            np.divide(1, s[:, None], out=r)
            np.multiply(ob, r, out=ob)  # a reciprocal and a product: f64 division is slow


def _shifted_rows(
    xb: FloatArray, rows: NDArray[np.intp], ones: FloatArray, ob: FloatArray, s: FloatArray
) -> None:
    """Rows ``rows`` of the block ``xb`` again, with the shift: ``e_j = exp(x_j - m)`` into
    those rows of ``ob``, and their sums into ``s``."""
    e = xb[rows]
    e -= e.max(axis=1, keepdims=True)
    np.exp(e, out=e)
    ob[rows] = e
    e_sums = np.empty(rows.size, dtype=xb.dtype)
    _row_dots(e, ones, e_sums)
    s[rows] = e_sums


def _in_parallel(
    kernel: Callable[..., None], inputs: tuple[FloatArray, ...], out: FloatArray
) -> None:
    """``kernel(*inputs, out)`` for (N, D) row views, split into contiguous segments of rows
    run on several threads (``_parallel``) when the arrays are large enough.

    Every row's result depends on that row alone (see the kernels), so it is the same
    whatever the split; each segment starts from a fresh kernel call with its own buffers.
    """
    n, d = out.shape
    parts = segments(n, _block_rows(d, out.itemsize), _MIN_BLOCKS_PER_THREAD)
    if len(parts) == 1:
        kernel(*inputs, out)
        return

    def work(rows: tuple[int, int]) -> None:
        a, b = rows
        with np.errstate(all="ignore"):  # context-local: not inherited by a worker thread
            kernel(*(array[a:b] for array in inputs), out[a:b])

    map_blocks(work, parts)


def _row_dots(a: FloatArray, b: FloatArray, out: FloatArray) -> None:
    """``out[i] = <a_i, b_i>`` for an (R, D) ``a``, by BLAS dots of at most _DOT_CHUNK entries.

    ``b`` is (R, D) like ``a``, or a vector of ones (at least ``min(D, _DOT_CHUNK)`` long)
    for the row sums of ``a``. A longer row is split into q equal chunks plus a remainder of
    fewer than q entries, whose dots are then added: still D - 1 additions, in an order fixed
    by D alone, so a row's result depends on nothing but the row (einsum's order also
    depends on how many rows there are). The FMA-fused products round less, not more.
    """
    rows, d = a.shape
    if not hasattr(np, "vecdot"):  # numpy < 2.0: the calls of the previous kernels
        if b.ndim == 2:
            np.einsum("ij,ij->i", a, b, out=out)
        else:
            np.add.reduce(a, axis=1, out=out)
        return
    q = -(-d // _DOT_CHUNK)
    c = d // q
    if q == 1:
        np.vecdot(a, b if b.ndim == 2 else b[:d], out=out)
        return
    k = q * c
    chunks = a[:, :k].reshape(rows, q, c)
    part = np.vecdot(chunks, b[:, :k].reshape(rows, q, c) if b.ndim == 2 else b[:c])
    np.add.reduce(part, axis=1, out=out)
    if k < d:
        out += np.vecdot(a[:, k:], b[:, k:] if b.ndim == 2 else b[: d - k])


def _vjp_rows(g: FloatArray, y: FloatArray, out: FloatArray) -> None:
    """``y * (g - <g, y>)`` per row of (N, D) arrays into ``out``, block by block of rows.

    The inner products come from BLAS dots (``_row_dots``, without a temporary): D - 1
    additions in an order other than the general path's pairwise sum, so a result can differ
    from it by rounding, within the same bound (the bound allows any order of the D - 1
    additions).
    """
    n, d = g.shape
    step = _block_rows(d, g.itemsize)
    inner = np.empty((min(step, n), 1), dtype=g.dtype)
    with _row_by_row(d):
        for start in range(0, n, step):
            stop = min(start + step, n)
            gb, yb, ob = g[start:stop], y[start:stop], out[start:stop]
            ib = inner[: stop - start]
            _row_dots(gb, yb, ib[:, 0])
            np.subtract(gb, ib, out=ob)
            np.multiply(ob, yb, out=ob)


def _float(value: object, name: str) -> FloatArray:
    """``value`` as a float array of a checked dtype (``as_float_array``), half included."""
    return as_float_array(value, name, dtypes=CHECKED_DTYPES)


def _widened(first: FloatArray, second: FloatArray | None = None) -> list[FloatArray] | None:
    """The arrays in float32 when either is half precision (computed there, rounded once on
    the way out), else None."""
    arrays = [first] if second is None else [first, second]
    if not any(is_half(a.dtype) for a in arrays):
        return None
    return [a.astype(np.float32) for a in arrays]


def softmax(x: FloatArray, axis: int = -1) -> FloatArray:
    """Softmax of ``x`` along ``axis``; stable for every finite input (see module docs)."""
    array = _float(x, "x")
    ax = check_axis(axis, array, "x")
    wide = _widened(array)
    if wide is not None:
        return softmax(wide[0], ax).astype(array.dtype)
    rows = _rows(array, ax)
    with np.errstate(all="ignore"):
        if rows is not None:
            result, result_rows = _empty_like_rows(array, ax)
            _in_parallel(_softmax_rows, (rows,), result_rows)
            return result
        # General path (no row view: the reduction axis is strided or not innermost):
        # one owned buffer, shifted logits, then exps in place, then normalized in place.
        return _shifted_softmax(array, ax)


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
    g = _float(dout, "dout")
    probs = _float(y, "y")
    check_same_shape(g, "dout", probs, "y")
    ax = check_axis(axis, g, "dout")
    wide = _widened(g, probs)
    if wide is not None:
        return _vjp(wide[0], wide[1], ax).astype(g.dtype)
    return _vjp(g, probs, ax)


def softmax_jvp(tangent: FloatArray, y: FloatArray, axis: int = -1) -> FloatArray:
    """Directional derivative of softmax at the point whose output is ``y``.

    ``J t = y * (t - sum(t * y, axis))``; equal to the VJP because J is symmetric.
    """
    t = _float(tangent, "tangent")
    probs = _float(y, "y")
    check_same_shape(t, "tangent", probs, "y")
    ax = check_axis(axis, t, "tangent")
    wide = _widened(t, probs)
    if wide is not None:
        return _vjp(wide[0], wide[1], ax).astype(t.dtype)
    return _vjp(t, probs, ax)


def log_softmax(x: FloatArray, axis: int = -1) -> FloatArray:
    """``x - logsumexp(x)`` along ``axis``, computed with the maximum subtracted."""
    array = _float(x, "x")
    ax = check_axis(axis, array, "x")
    wide = _widened(array)
    if wide is not None:
        return log_softmax(wide[0], ax).astype(array.dtype)
    with np.errstate(all="ignore"):
        out: FloatArray = array - array.max(axis=ax, keepdims=True)
        out -= np.log(np.exp(out).sum(axis=ax, keepdims=True))
    return out


def log_softmax_backward(dout: FloatArray, y: FloatArray, axis: int = -1) -> FloatArray:
    """Gradient of ``L = sum(dout * log_softmax(x))`` given ``y = log_softmax(x)``.

    ``dx = dout - exp(y) * sum(dout, axis)``.
    """
    g = _float(dout, "dout")
    logp = _float(y, "y")
    check_same_shape(g, "dout", logp, "y")
    ax = check_axis(axis, g, "dout")
    wide = _widened(g, logp)
    if wide is not None:
        return log_softmax_backward(wide[0], wide[1], ax).astype(g.dtype)
    with np.errstate(all="ignore"):
        out: FloatArray = np.exp(logp)
        out *= g.sum(axis=ax, keepdims=True)
        np.subtract(g, out, out=out)
    return out
