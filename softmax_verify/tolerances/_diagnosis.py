r"""Bounds for the diagnoses: a backward formula evaluated at an implementation's own output,
and the log of a computed probability."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import DTypeLike, NDArray

from softmax_verify.core.options import Accumulation
from softmax_verify.tolerances._forward import forward_relative_bound
from softmax_verify.tolerances._rounding import (
    Float64Array,
    _smallest_normal,
    gamma,
)

__all__ = ["formula_bound", "log_output_error"]


def formula_bound(
    abs_formula: NDArray[Any],
    x: NDArray[Any],
    dout: NDArray[Any],
    dtype: DTypeLike,
    *,
    accumulate: Accumulation = "float32",
) -> Float64Array:
    r"""Per-entry bound for a backward formula F built from y, g and x by products and sums,
    evaluated in float64 at an implementation's own forward output (the diagnoses):

    .. math:: \tau_F = (8\eta + \gamma_n + \gamma^{(64)}_n)\,|F|_{abs} + n\lambda(1 + \|g\|_\infty)

    - ``abs_formula`` :math:`|F|_{abs}`: F with every term replaced by its absolute value
      (Higham: rounding errors are relative to the terms, not to their sum);
    - :math:`8\eta`, :math:`\eta` the row's largest ``forward_relative_bound``: the backward
      may re-derive y from its cache (both within :math:`\eta` of the exact, so
      :math:`2\eta` apart), y enters up to squared (:math:`4\eta`), and through a softmax
      of y twice that;
    - :math:`\gamma_n`, :math:`n = ND + D + 16`: the roundings of any sum over at most the
      batch, a few products and the output, in the dtype and again in float64;
    - :math:`n\lambda(1 + \|g\|_\infty)`: underflow below the normal range (flushed or not).

    ``accumulate``: the half-precision accumulation model :math:`\eta` is taken under.
    """
    x64 = np.asarray(x, dtype=np.float64)
    n = x64.size + x64.shape[1] + 16
    eta = forward_relative_bound(x64, dtype, accumulate=accumulate).max(axis=1, keepdims=True)
    scale = 8 * eta + gamma(n, dtype) + gamma(n, np.float64)
    gmax = float(np.abs(np.asarray(dout, dtype=np.float64)).max(initial=0.0))
    lam = _smallest_normal(dtype)  # the dtype's own: the formula may be evaluated in it
    out: Float64Array = scale * np.asarray(abs_formula, dtype=np.float64) + n * lam * (1 + gmax)
    return out


def log_output_error(
    x: NDArray[Any], y_hat: NDArray[Any], dtype: DTypeLike, *, accumulate: Accumulation = "float32"
) -> Float64Array:
    r"""Bound on :math:`|\log \hat y_i - \log y_i|` for a correct forward's output ``y_hat``:
    :math:`1.01(\eta_i + \lambda / \hat y_i)`, valid where it is below 1 % (there
    :math:`|\log(1 + e)| \le 1.01|e|`); larger values say the entry is unusable.
    :math:`\eta` under the ``accumulate`` model."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out: Float64Array = 1.01 * (
            forward_relative_bound(x, dtype, accumulate=accumulate)
            + _smallest_normal(dtype) / np.asarray(y_hat, dtype=np.float64)
        )
    return out
