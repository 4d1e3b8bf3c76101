"""Softmax forwards written the way kernels are: column blocks, half precision.

Each takes a 2-D (N, D) array and returns y of x's dtype. The wrong ones make the
mistakes real kernels make (a block count rounded down, a half-precision
accumulator, intermediate results rounded to bfloat16); the right ones are what a
careful kernel does. tests/invariants/test_kernels.py gives each its verdict.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from softmax_verify.core.dtypes import named_dtype

A = NDArray[Any]


def _online(x: A, block: int, count: Callable[[int], int]) -> A:
    """Online softmax: a running maximum and a rescaled running sum over column blocks.

    ``count(D)`` is the number of blocks visited; columns past them never enter the
    maximum or the sum.
    """
    n = x.shape[0]
    m = np.full((n, 1), -np.inf, dtype=x.dtype)
    s = np.zeros((n, 1), dtype=x.dtype)
    for b in range(count(x.shape[1])):
        xb = x[:, b * block : (b + 1) * block]
        m_new = np.maximum(m, xb.max(axis=1, keepdims=True))
        s = s * np.exp(m - m_new) + np.exp(xb - m_new).sum(axis=1, keepdims=True)
        m = m_new
    return np.asarray(np.exp(x - m) / s, dtype=x.dtype)


def online_ceil_128(x: A) -> A:
    """Correct: ceil(D / 128) blocks, the last one partial."""
    return _online(x, 128, lambda d: -(-d // 128))


def online_floor_128(x: A) -> A:
    """Wrong: D // 128 blocks (at least one), so the tail of a row past the last full
    block of 128 is never summed. Rows of at most 128 columns, and multiples of 128,
    are right."""
    return _online(x, 128, lambda d: max(1, d // 128))


def online_floor_1024(x: A) -> A:
    """Wrong: as online_floor_128 with blocks of 1024: only rows longer than 1024 break."""
    return _online(x, 1024, lambda d: max(1, d // 1024))


def _wide(x: A) -> A:
    """Softmax of x in float32: max-shifted exp, a float32 row sum, a division."""
    x32 = x.astype(np.float32)
    e = np.exp(x32 - x32.max(axis=1, keepdims=True))
    return np.asarray(e / e.sum(axis=1, keepdims=True, dtype=np.float32))


def half_wide_accumulation(x: A) -> A:
    """Correct half-precision kernel (float16 or bfloat16 in and out): everything in
    float32, rounded once to x's dtype at the end."""
    return _wide(x).astype(x.dtype)


def float16_sequential(x: A) -> A:
    """Wrong: float16 throughout, the row sum accumulated left to right in float16.

    Once the running sum reaches 2048 adding 1 no longer changes it (float16 has 11
    significant bits): at D = 4096 a constant row sums to 2048 instead of 4096.
    """
    e = np.exp(x - x.max(axis=1, keepdims=True))
    s = np.add.accumulate(e, axis=1, dtype=np.float16)[:, -1:]
    return np.asarray(e / s, dtype=np.float16)


def bfloat16_rounded_intermediates(x: A) -> A:
    """Wrong: computes in float32 but stores exp(x - m) and the row sum as bfloat16
    before dividing, three roundings of 2**-8 where one is budgeted."""
    bf16 = named_dtype("bfloat16")
    x32 = x.astype(np.float32)
    e = np.exp(x32 - x32.max(axis=1, keepdims=True)).astype(bf16).astype(np.float32)
    s = e.sum(axis=1, keepdims=True, dtype=np.float32).astype(bf16).astype(np.float32)
    y: A = (e / s).astype(bf16)
    return y


def float32_sequential(x: A) -> A:
    """Correct: float32, the row sum accumulated left to right (a loop over columns),
    as a scalar kernel does: rounding errors add up over D terms, within gamma(D)."""
    e = np.exp(x - x.max(axis=1, keepdims=True))
    s = np.add.accumulate(e, axis=1, dtype=x.dtype)[:, -1:]
    return np.asarray(e / s, dtype=x.dtype)
