"""Half-precision softmax computed in the half dtype itself ("half in half"), right and wrong.

Each forward takes a 2-D (N, D) float16 or bfloat16 array and returns y of its dtype; each
backward takes (dout, cache) and returns dx of dout's dtype. Every operation rounds to the
half dtype (numpy's float16 arithmetic and ml_dtypes' bfloat16 compute each operation wider
and round its result once, as half hardware does), so the ``--accumulate float32`` model,
one rounding at the end, does not describe them; ``--accumulate input`` does:

- right: the row sum added pairwise in the half dtype (a tree, as GPU reductions are), or
  accumulated in float32 and rounded (as XLA does for half reductions), every other step in
  the half dtype; the backward likewise;
- wrong: the forward's running sum added left to right in the half dtype, which stalls on a
  long row (its errors are of one sign, not independent: beyond the probabilistic bound,
  within the worst case); the backward jax's default path takes, which forms ``s ** 2`` in
  the half dtype (it overflows float16 from s = 256, and the term of the row sum vanishes:
  a row's gradient then sums to 1, not 0); and ``dx = y * dout``, the row sum left out.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

A = NDArray[Any]


def pairwise_sum(a: A) -> A:
    """Row sums (N, 1) added pairwise in a's dtype: log2(D) roundings on any term's path."""
    rows = a
    while rows.shape[1] > 1:
        if rows.shape[1] % 2:
            rows = np.concatenate([rows, np.zeros_like(rows[:, :1])], axis=1)
        rows = rows[:, 0::2] + rows[:, 1::2]
    return rows


def _shifted_exps(x: A) -> A:
    """exp(x - max) with both steps rounded to x's dtype."""
    shifted = x - x.max(axis=1, keepdims=True)
    return np.asarray(np.exp(shifted), dtype=x.dtype)


def pairwise(x: A) -> A:
    """Right: every step in the half dtype, the row sum pairwise."""
    e = _shifted_exps(x)
    return np.asarray(e / pairwise_sum(e), dtype=x.dtype)


def float32_reduction(x: A) -> A:
    """Right: elementwise steps in the half dtype, the row sum accumulated in float32 and
    rounded to the half dtype (as XLA reduces half arrays)."""
    e = _shifted_exps(x)
    s = e.sum(axis=1, keepdims=True, dtype=np.float32).astype(x.dtype)
    return np.asarray(e / s, dtype=x.dtype)


def pairwise_backward(dout: A, y: A) -> A:
    """Right: dx = y * (dout - <dout, y>), every step in the half dtype, the sum pairwise."""
    products = (dout * y).astype(dout.dtype)
    return np.asarray(y * (dout - pairwise_sum(products)), dtype=dout.dtype)


def sequential(x: A) -> A:
    """Wrong on long rows: the running sum added left to right in the half dtype.

    Once the sum's ulp exceeds twice a term, adding the term changes nothing: a constant
    float16 row of 4096 sums to 2048; of bfloat16, 1000 ones sum to 256.
    """
    e = _shifted_exps(x)
    s = np.add.accumulate(e, axis=1, dtype=x.dtype)[:, -1:]
    return np.asarray(e / s, dtype=x.dtype)


def unnormalized_forward(x: A) -> tuple[A, tuple[A, A]]:
    """Right: y = e / s in the half dtype (the sum in float32, rounded), keeping e and s for
    a backward that differentiates e / s itself."""
    e = _shifted_exps(x)
    s = e.sum(axis=1, keepdims=True, dtype=np.float32).astype(x.dtype)
    return np.asarray(e / s, dtype=x.dtype), (e, s)


def squared_sum_backward(dout: A, cache: tuple[A, A]) -> A:
    """Wrong: the VJP of y = e / s as jax's autodiff takes it on its default path, every step
    in the half dtype: the gradient of s is -sum(dout * e * s ** -2), with s ** -2 formed as
    1 / (s * s). In float16 s * s overflows from s = 256 (and is subnormal from about 180),
    so that gradient is 0 and dx = e * dout / s = y * dout: a row's gradient sums to
    <dout, y> instead of 0."""
    e, s = cache
    dt = dout.dtype
    with np.errstate(over="ignore"):
        inverse_square = (1 / (s * s).astype(dt)).astype(dt)
    terms = ((dout * e).astype(dt) * inverse_square).astype(dt)
    d_sum = -terms.sum(axis=1, keepdims=True, dtype=np.float32).astype(dt)
    return np.asarray(e * (dout / s + d_sum), dtype=dt)


def sum_term_missing(dout: A, y: A) -> A:
    """Wrong: dx = y * dout, the row sum's term -y <dout, y> left out."""
    return np.asarray(y * dout, dtype=dout.dtype)
