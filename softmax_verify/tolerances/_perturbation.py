r"""How far an exact output moves when a check rounds its own input (a shifted row, a combined
upstream), and that combination's own float64 rounding."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from softmax_verify.tolerances._rounding import (
    Float64Array,
    gamma,
)

__all__ = [
    "combination_rounding",
    "log_softmax_perturbation",
    "log_softmax_vjp_perturbation",
    "softmax_perturbation",
    "softmax_vjp_perturbation",
]


def softmax_perturbation(y_exact: NDArray[Any], spread: NDArray[Any]) -> Float64Array:
    r"""How far softmax moves when the logits of a row move by at most ``spread``:
    :math:`y_i (e^{2\|\delta\|_\infty} - 1)`.

    :math:`y_i(x + \delta) = e^{\delta_i} y_i / \sum_j y_j e^{\delta_j}`, a factor within
    :math:`e^{\pm 2\|\delta\|_\infty}`. ``spread``: :math:`\|\delta\|_\infty` per row (N, 1).
    """
    out: Float64Array = np.asarray(y_exact, dtype=np.float64) * np.expm1(2 * spread)
    return out


def log_softmax_perturbation(spread: NDArray[Any]) -> Float64Array:
    r"""How far log_softmax moves when a row's logits move by at most ``spread``:
    :math:`dz = \delta - \mathbf 1 \langle y, \delta\rangle`, at most :math:`2\|\delta\|_\infty`."""
    out: Float64Array = 2 * np.asarray(spread, dtype=np.float64)
    return out


def softmax_vjp_perturbation(y_exact: NDArray[Any], delta: NDArray[Any]) -> Float64Array:
    r""":math:`|J\delta|_i \le y_i(|\delta_i| + \sum_j y_j |\delta_j|)`: how far the softmax
    VJP moves when its upstream moves by ``delta`` (:math:`J = \operatorname{diag}(y) -
    yy^\top`)."""
    y = np.asarray(y_exact, dtype=np.float64)
    d = np.abs(np.asarray(delta, dtype=np.float64))
    out: Float64Array = y * (d + (y * d).sum(axis=-1, keepdims=True))
    return out


def log_softmax_vjp_perturbation(z_exact: NDArray[Any], delta: NDArray[Any]) -> Float64Array:
    r""":math:`|J^\top\delta|_i \le |\delta_i| + y_i \sum_j |\delta_j|`: how far the
    log_softmax VJP moves when its upstream moves by ``delta`` (:math:`J = I - \mathbf 1
    y^\top`, :math:`y = e^z`)."""
    d = np.abs(np.asarray(delta, dtype=np.float64))
    out: Float64Array = d + np.exp(np.asarray(z_exact, dtype=np.float64)) * d.sum(
        axis=-1, keepdims=True
    )
    return out


def combination_rounding(*terms: NDArray[Any]) -> Float64Array:
    r""":math:`\gamma_2 \sum_k |t_k|`: a check's own float64 combination :math:`a p + b q` of
    two results (a product by a power of two is exact; the addition and a spare rounding)."""
    total = sum(np.abs(np.asarray(t, dtype=np.float64)) for t in terms)
    out: Float64Array = gamma(2, np.float64) * np.asarray(total, dtype=np.float64)
    return out
