r"""Probabilistic rounding-error bounds (Higham and Mary, "A new approach to probabilistic
rounding error analysis", SIAM J. Sci. Comput. 41(5), 2019): the ``"input"`` accumulation
model of half precision.

The model: the relative errors :math:`\delta_k`, :math:`|\delta_k| \le u`, of the roundings in
a computation are independent random variables of mean zero. Their Theorem 3.1: for any
:math:`c > 0`, a product of n factors :math:`(1 + \delta_k)^{\pm 1}` is :math:`1 + \theta_n` with

.. math:: |\theta_n| \le \tilde\gamma_n(c) = \exp\big(c\sqrt n\, u + n u^2/(1 - u)\big) - 1
          = c\sqrt n\, u + O(u^2)

with probability at least :math:`P(c) = 1 - 2\exp(-c^2(1 - u)^2/2)`. A sum of D terms (or an
inner product), in any order, carries each term through at most D such factors; by the union
bound over its terms, every term's factor is within :math:`\tilde\gamma` with probability at
least :math:`1 - D(1 - P(c))` (their Theorem 4.2). The worst case :math:`\gamma_n` holds
always, so the bound used is :math:`\min(\gamma_n, \tilde\gamma_n(c))`: smaller from
:math:`n > c^2` on.

``CONFIDENCE`` c = 10: a term's bound fails with probability at most
:math:`2 e^{-c^2(1 - u)^2/2} \approx 3.9 \cdot 10^{-22}` (float16). A ci run at one half dtype
forms fewer than :math:`2^{30}` terms of sums and inner products in the code under test (100
examples; per example at most :math:`2^{15}` entries per call, 130 calls' worth for
central_differences with its stacked copies and at most 10 calls for each of the 17 other
invariants), so the chance that any of them
exceeds its bound, the chance of a false alarm on a correct kernel, is below
:math:`2^{30} \cdot 3.9 \cdot 10^{-22} \approx 4.2 \cdot 10^{-13}` per run (and below
:math:`10^{-11}` for the thorough profile's 2000 examples). ``false_alarm_probability``
computes it.

What the model does not cover: rounding errors that are not independent or not of mean zero.
Recursive summation of a long row stalls once the running sum's ulp exceeds the terms (1 +
2048 = 2048 in float16, every addition rounding down): its error grows as n u, not
:math:`\sqrt n u`. Such kernels are judged by ``"input-worst-case"``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["CONFIDENCE", "false_alarm_probability", "gamma_tilde", "term_failure"]

#: Higham and Mary's lambda (written c here: lambda is the smallest normal number elsewhere).
CONFIDENCE = 10.0
#: Terms of sums and inner products a ci run forms at one half dtype, at most (module
#: docstring): 100 examples x (central_differences' 130 calls' worth of stacked copies + 17
#: other invariants x at most 10 calls) x 2**15 entries = 9.8e8 < 2**30.
CI_TERMS = 2**30


def gamma_tilde(n: float | NDArray[Any], u: float, c: float = CONFIDENCE) -> NDArray[np.float64]:
    r""":math:`\min(\gamma_n, \tilde\gamma_n(c))` for unit roundoff u: the relative error bound of
    n roundings, worst case, or with probability at least :math:`P(c)` (module docstring).
    Infinite where :math:`nu \ge 1` and the probabilistic bound overflows."""
    nn = np.asarray(n, dtype=np.float64)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        worst = np.where(nn * u < 1, nn * u / np.maximum(1 - nn * u, 0.0), np.inf)
        likely = np.expm1(c * np.sqrt(nn) * u + nn * u * u / (1 - u))
    out: NDArray[np.float64] = np.minimum(worst, likely)
    return out


def term_failure(u: float, c: float = CONFIDENCE) -> float:
    r""":math:`1 - P(c) = 2\exp(-c^2(1 - u)^2/2)`: the probability that one term's product of
    rounding factors exceeds :math:`\tilde\gamma_n(c)`."""
    return 2.0 * math.exp(-(c**2) * (1 - u) ** 2 / 2)


def false_alarm_probability(u: float, terms: int = CI_TERMS, c: float = CONFIDENCE) -> float:
    """The union bound on a false alarm over ``terms`` terms of sums: ``terms`` times
    ``term_failure`` (at most 1)."""
    return min(1.0, terms * term_failure(u, c))
