r"""The trusted float64 oracle of softmax cross-entropy: target rows, row losses, reductions, VJP.

Beside ``core.oracle`` (whose ``softmax`` and ``log_softmax`` it uses), and in its style:
each function is its formula and nothing else, along the last axis of (N, C) logits, in
float64, with the row maximum :math:`m = \max_j x_j` subtracted so that no ``exp``
overflows. Notation (docs/tolerances.md, "Cross-entropy"): ``q`` the target row (the
one-hot row of an index label, or the row given: one-hot or probabilities),
:math:`t_j = m - x_j \ge 0` the gaps, :math:`s = \sum_j e^{-t_j} \in [1, C]`,
:math:`L = \log s`, :math:`z_j = -t_j - L` the log-softmax, :math:`p` the softmax.

- ``row_losses``: :math:`\ell = -\sum_j q_j z_j = \sum_{j: q_j \ne 0} q_j (t_j + L)`.
  For :math:`q \ge 0` every term is a product of two non-negative numbers, each computed
  with a relative error of a few u (:math:`t_j` one rounded subtraction, L one ``log`` of a
  sum of positive terms), so the sum does not cancel: relative error :math:`\gamma_{C+5}`
  in float64 whatever the magnitude of the logits. The issue's
  :math:`\operatorname{logsumexp}(x) - \langle q, x\rangle` is the same number when
  :math:`\sum_j q_j = 1`, but evaluated that way it is a difference of two numbers of
  size :math:`|m|` and loses :math:`u|m|` absolutely (1e-8 relative at x = [1e17, 1e17 +
  16]; 0 instead of :math:`\ln C` on a constant float32 row at 1e38): not a reference.
- ``reduce``: ``"mean"`` :math:`\frac1N\sum_i \ell_i`, ``"sum"`` :math:`\sum_i \ell_i`,
  ``"none"`` the rows. The sum is ``math.fsum`` (correctly rounded), so the reduction
  adds one rounding, two for the mean's division.
- ``vjp``: the gradient of :math:`\mathcal L = \sum_i c_i \ell_i` (``weights``:
  :math:`c_i = g/N` for mean, :math:`g` for sum, :math:`g_i` for none):
  :math:`dx_i = c_i((\sum_j q_{ij}) p_i - q_i)`, the issue's :math:`c_i(p_i - q_i)` on the
  simplex (:math:`\sum_j q_j = 1`, which every label the strategies draw satisfies
  exactly). Off the simplex it is still the gradient of :math:`-\sum_j q_j z_j`, the
  function ``torch.nn.functional.cross_entropy`` with probability targets and
  ``optax.softmax_cross_entropy`` compute.

Non-finite rows follow ``core.oracle``: a NaN or ``+inf`` logit, or a row of only
``-inf``, gives a NaN loss and gradient row. A ``-inf`` logit beside finite ones (a
masked class) has probability 0; with target weight 0 it adds exactly 0 to the loss (the
limit, not the IEEE ``0 * inf = NaN`` of ``-(q * log_softmax(x)).sum()``), with a positive
weight the loss is ``+inf``. The default strategies draw finite logits only.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from softmax_verify.core.options import Reduction
from softmax_verify.core.oracle import F64, f64, softmax

__all__ = ["gaps_and_log_sum", "loss", "reduce", "row_losses", "targets", "vjp", "weights"]


def targets(labels: NDArray[Any], classes: int) -> F64:
    """The (N, C) target rows q in float64: an index label's one-hot row, or the rows given.

    Index labels (1-D, integers) must lie in ``[0, classes)``; 2-D labels (one-hot or
    probability rows, in any float dtype) convert exactly.
    """
    lab = np.asarray(labels)
    if lab.ndim == 1:
        if lab.dtype.kind not in "iu":
            raise TypeError(f"labels must be integer class indices, got dtype {lab.dtype}")
        if lab.size and (int(lab.min()) < 0 or int(lab.max()) >= classes):
            raise ValueError(f"labels must lie in [0, {classes}), got {lab.min()}..{lab.max()}")
        out: F64 = np.zeros((lab.shape[0], classes), dtype=np.float64)
        out[np.arange(lab.shape[0]), lab] = 1.0
        return out
    if lab.ndim != 2 or lab.shape[1] != classes:
        raise ValueError(f"labels must be (N,) indices or (N, {classes}) rows, got {lab.shape}")
    rows: F64 = f64(lab).copy()
    return rows


def gaps_and_log_sum(x: ArrayLike) -> tuple[F64, F64]:
    r""":math:`t = m - x` (N, C) and :math:`L = \log\sum_j e^{-t_j}` (N, 1), in float64."""
    x64 = f64(x)
    with np.errstate(all="ignore"):
        t: F64 = x64.max(axis=-1, keepdims=True) - x64
        log_sum: F64 = np.log(np.exp(-t).sum(axis=-1, keepdims=True))
    return t, log_sum


def row_losses(x: ArrayLike, q: ArrayLike) -> F64:
    r""":math:`\ell_i = \sum_{j: q_{ij} \ne 0} q_{ij} (t_{ij} + L_i)` per row (N,), in float64.

    Terms of zero weight are exactly 0; a NaN row (a NaN or ``+inf`` logit, no finite
    logit) stays NaN even where q is 0 there.
    """
    q64 = f64(q)
    t, log_sum = gaps_and_log_sum(x)
    with np.errstate(all="ignore"):
        terms = np.where(q64 != 0, q64 * (t + log_sum), 0.0)
        out: F64 = terms.sum(axis=-1)
    out[np.isnan(log_sum[:, 0]) | np.isnan(t).any(axis=-1)] = np.nan
    return out


def reduce(rows: ArrayLike, reduction: Reduction) -> F64:
    """The rows' losses reduced: 0-d for ``"mean"`` and ``"sum"`` (``math.fsum``, exactly
    rounded; a sum beyond float64's range is taken scaled by 2**-64, exactly), a copy of the
    rows for ``"none"``."""
    r = f64(rows)
    if reduction == "none":
        each: F64 = r.copy()
        return each
    n = max(r.shape[0], 1) if reduction == "mean" else 1
    with np.errstate(all="ignore"):
        if not np.isfinite(r).all():
            total = float(r.sum()) / n
        else:
            try:
                total = math.fsum(r.tolist()) / n
            except OverflowError:  # rows near max/2 each: their sum overflows, the mean not
                total = math.fsum((r * 2.0**-64).tolist()) / n * 2.0**64
    return np.asarray(total, dtype=np.float64)


def loss(x: ArrayLike, q: ArrayLike, reduction: Reduction) -> F64:
    """``reduce(row_losses(x, q), reduction)``: the reference loss."""
    return reduce(row_losses(x, q), reduction)


def weights(rows: int, reduction: Reduction, upstream: ArrayLike) -> F64:
    r"""Per-row weights :math:`c_i` (N, 1) of :math:`\mathcal L = \sum_i c_i \ell_i`: the
    upstream g over N (mean), g (sum), or :math:`g_i` ((N,), none)."""
    g = f64(upstream)
    if reduction == "none":
        if g.shape != (rows,):
            raise ValueError(
                f"reduction 'none' takes an upstream of shape ({rows},), got {g.shape}"
            )
        given: F64 = g.reshape(rows, 1).copy()
        return given
    if g.ndim != 0:
        raise ValueError(f"reduction {reduction!r} takes a scalar upstream, got shape {g.shape}")
    c = float(g) / rows if reduction == "mean" else float(g)
    return np.full((rows, 1), c, dtype=np.float64)


def vjp(x: ArrayLike, q: ArrayLike, reduction: Reduction, upstream: ArrayLike) -> F64:
    r""":math:`dx_i = c_i((\sum_j q_{ij}) p_i - q_i)` (N, C): the gradient of
    :math:`\sum_i c_i \ell_i` (``weights``); the row masses :math:`\sum_j q_{ij}` by
    ``math.fsum``."""
    q64, x64 = f64(q), f64(x)
    c = weights(x64.shape[0], reduction, upstream)
    mass = np.array([math.fsum(row) for row in q64.tolist()], dtype=np.float64).reshape(-1, 1)
    with np.errstate(all="ignore"):
        out: F64 = softmax(x64) * mass
        out -= q64
        out *= c
    return out
