r"""The bundled cross-entropy reference: softmax fused with the cross-entropy loss, and its VJP.

A target like any other (``softmax-verify check --kind cross_entropy`` with no target
checks it): the verifier's exact values come from the float64 oracle
(``softmax_verify.core.cross_entropy``), against which this is tested too.

Both functions are pure, take float32 or float64 logits ``x`` of shape (N, C) and labels
as (N,) integer class indices or (N, C) rows (one-hot or probabilities) in any float
dtype, and return x's dtype. Half-precision logits (float16, and bfloat16 with ml_dtypes)
are computed in float32 and the result rounded once to their dtype, as the bundled softmax
does: the kernel the default accumulation model describes (docs/tolerances.md).

Along each row, with :math:`m = \max_j x_j`, the shifted logits
:math:`x_j - m = -t_j \le 0`, :math:`s = \sum_j e^{-t_j}` and target row q:

- ``cross_entropy``: the row loss :math:`\ell = \sum_{j: q_j \ne 0} q_j (t_j + \log s)`,
  a sum of products of non-negative numbers (an index label's is :math:`t_y + \log s`),
  so nothing cancels whatever the logits' magnitude (the issue's
  :math:`\operatorname{logsumexp}(x) - x_y` would lose :math:`u|m|`); reduced by
  ``reduction``: ``"mean"`` (default) over the N rows, ``"sum"``, or ``"none"`` (the
  rows' losses, shape (N,)).
- ``cross_entropy_backward``: :math:`dx_i = c_i((\sum_j q_{ij}) p_i - q_i)`, p the
  softmax, :math:`c_i` the upstream ``dout`` over N (mean), ``dout`` (sum) or
  ``dout[i]`` (none: an (N,) upstream); :math:`c_i(p_i - q_i)` for index and one-hot
  labels.

Accuracy (docs/tolerances.md, "Cross-entropy"): within the bounds every correct
implementation is judged by; no ``exp`` overflows for finite x. A ``-inf`` logit (a
masked class) with target weight 0 adds exactly 0 to the loss; NaN or ``+inf`` give NaN.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from softmax_verify.core.dtypes import is_float_dtype, is_half
from softmax_verify.core.validate import CHECKED_DTYPES, as_matrix

__all__ = ["cross_entropy", "cross_entropy_backward"]

FloatArray = NDArray[np.floating[Any]]
_REDUCTIONS = ("mean", "sum", "none")


def _check(x: object, labels: object, reduction: object) -> tuple[FloatArray, NDArray[Any]]:
    """``x`` as an (N, C) float matrix (half precision included) and ``labels`` checked
    against it."""
    logits = as_matrix(x, "x", dtypes=CHECKED_DTYPES)
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {', '.join(_REDUCTIONS)}; got {reduction!r}")
    lab = np.asarray(labels)
    n, c = logits.shape
    if lab.ndim == 1:
        if lab.dtype.kind not in "iu":
            raise TypeError(f"labels must be integer class indices (N,), got dtype {lab.dtype}")
        if lab.shape != (n,):
            raise ValueError(f"labels must have shape ({n},) for x of shape {logits.shape}")
        if n and (int(lab.min()) < 0 or int(lab.max()) >= c):
            raise ValueError(f"labels must lie in [0, {c}), got {lab.min()}..{lab.max()}")
    elif lab.shape != (n, c) or not is_float_dtype(lab.dtype):
        raise ValueError(
            f"labels must be (N,) class indices or float rows of x's shape {logits.shape}, got "
            f"{lab.dtype} of shape {lab.shape}"
        )
    return logits, lab


def _widened(labels: NDArray[Any]) -> NDArray[Any]:
    """Label rows in float32 for a half-precision run (class indices as they are)."""
    return labels.astype(np.float32) if labels.ndim == 2 else labels


def _shifted(x: FloatArray) -> tuple[FloatArray, FloatArray]:
    """:math:`x - m` (N, C) and :math:`s = \\sum_j e^{x_j - m}` (N, 1), in x's dtype."""
    shifted = x - x.max(axis=1, keepdims=True)
    return shifted, np.exp(shifted).sum(axis=1, keepdims=True)


def cross_entropy(x: ArrayLike, labels: ArrayLike, reduction: str = "mean") -> FloatArray:
    r"""The cross-entropy of softmax(x) against the labels, reduced (module docstring).

    Returns a 0-d array for ``"mean"`` and ``"sum"``, an (N,) array for ``"none"``.
    """
    logits, lab = _check(x, labels, reduction)
    if is_half(logits.dtype):
        wide = cross_entropy(logits.astype(np.float32), _widened(lab), reduction)
        return wide.astype(logits.dtype)
    n = logits.shape[0]
    with np.errstate(all="ignore"):
        shifted, s = _shifted(logits)
        log_s = np.log(s)
        rows: FloatArray
        if lab.ndim == 1:
            rows = log_s[:, 0] - shifted[np.arange(n), lab]
        else:
            q = lab.astype(logits.dtype)
            rows = np.where(q != 0, q * (log_s - shifted), 0).sum(axis=1, dtype=logits.dtype)
        if reduction == "none":
            return rows
        total = rows.sum(dtype=logits.dtype)
        out: FloatArray = np.asarray(total / n if reduction == "mean" else total)
    return out


def cross_entropy_backward(
    x: ArrayLike, labels: ArrayLike, dout: ArrayLike = 1.0, reduction: str = "mean"
) -> FloatArray:
    r"""The gradient of ``cross_entropy(x, labels, reduction)`` times ``dout`` with respect to
    x: :math:`c_i((\sum_j q_{ij}) p_i - q_i)` (module docstring). ``dout`` is a scalar for
    ``"mean"`` and ``"sum"``, an (N,) array for ``"none"``."""
    logits, lab = _check(x, labels, reduction)
    n = logits.shape[0]
    g = np.asarray(dout, dtype=logits.dtype)
    expected = (n,) if reduction == "none" else ()
    if g.shape != expected:
        raise ValueError(f"dout must have shape {expected} for reduction {reduction!r}")
    if is_half(logits.dtype):
        wide = cross_entropy_backward(
            logits.astype(np.float32), _widened(lab), g.astype(np.float32), reduction
        )
        return wide.astype(logits.dtype)
    with np.errstate(all="ignore"):
        shifted, s = _shifted(logits)
        dx: FloatArray = np.exp(shifted) / s
        if lab.ndim == 1:
            dx[np.arange(n), lab] -= 1
        else:
            q = lab.astype(logits.dtype)
            dx *= q.sum(axis=1, keepdims=True)
            dx -= q
        if reduction == "none":
            dx *= g[:, None]
        else:
            dx *= g / n if reduction == "mean" else g
    return dx
