"""Canonical (N, D) rows laid out in the code's own layout, and back, exactly.

The code's layout has rank R with the softmax axis (of length D) at position K;
its other R - 1 axes hold the N rows, in C order. Those batch axes are a
factorization of N with every factor above 1 where N allows, so that code which
reduces over a wrong axis sees more than one entry there and shows it. Both maps
are a reshape and one ``moveaxis``: views, no arithmetic, so nothing is rounded
and a write into the code's array is a write into the canonical one.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["Layout", "batch_shape"]


def _prime_factors(n: int) -> list[int]:
    factors, p = [], 2
    while p * p <= n:
        while n % p == 0:
            factors.append(p)
            n //= p
        p += 1
    if n > 1:
        factors.append(n)
    return factors


def batch_shape(n: int, axes: int) -> tuple[int, ...]:
    """``axes`` integers whose product is ``n``, each above 1 while prime factors remain.

    The largest prime factors are dealt out first, each to the currently smallest
    axis, the last such axis first: the axes next to the softmax axis (an attention
    layer's query axis) get the factors when there are too few for all. 12 over 3 axes
    is (2, 2, 3), 6 over 3 is (1, 2, 3), 7 over 2 is (1, 7).
    """
    shape = [1] * axes
    for p in sorted(_prime_factors(n), reverse=True):
        smallest = min(shape)
        shape[axes - 1 - shape[::-1].index(smallest)] *= p
    return tuple(shape)


class Layout:
    """The map between canonical (N, D) arrays and the code's rank-R layout."""

    def __init__(self, rank: int, axis: int) -> None:
        self.rank = rank
        self.axis = axis % rank

    @property
    def identity(self) -> bool:
        return self.rank == 2 and self.axis == 1

    def shape(self, n: int, d: int) -> tuple[int, ...]:
        """The code's shape for N rows of length D."""
        batch = list(batch_shape(n, self.rank - 1))
        return (*batch[: self.axis], d, *batch[self.axis :])

    def to_code(self, a: NDArray[Any]) -> NDArray[Any]:
        """(N, D) -> the code's layout (a view when ``a`` is contiguous)."""
        n, d = a.shape
        return np.moveaxis(a.reshape(*batch_shape(n, self.rank - 1), d), -1, self.axis)

    def to_canonical(self, a: NDArray[Any]) -> NDArray[Any]:
        """The code's layout -> (N, D)."""
        moved = np.moveaxis(a, self.axis, -1)
        return moved.reshape(-1, moved.shape[-1])

    def batch_first(self, a: NDArray[Any]) -> NDArray[Any]:
        """The code's layout with the softmax axis moved last (batch axes in order)."""
        return np.moveaxis(a, self.axis, -1)

    def describe(self) -> str:
        if self.identity:
            return "axis -1"
        dims = ["B"] * (self.rank - 1)
        dims.insert(self.axis, "D")
        return (
            f"rank {self.rank}, axis {self.axis}: rows laid out as ({', '.join(dims)}), "
            f"B the factors of N (each > 1 where N allows); counterexamples shown as (N, D)"
        )
