r"""When a formula counts as proven: the match rule shared by every catalogue entry.

On one probe, with the implementation's output :math:`a`, a candidate formula
:math:`F` with tolerance :math:`\tau_F`, and the correct formula :math:`C` with
tolerance :math:`\tau_C` (a bound that every correct implementation meets):

- *matches*: :math:`|a - F| \le \tau_F` entry by entry (NaN against NaN and equal
  infinities agree, as in ``_compare.find_mismatch``);
- *differs*: some entry has :math:`|F - C| > \tau_F + \tau_C`.

A formula is named when it matches on **every** probe and differs on at least
``MIN_DIFFERING`` of them. On a differing probe a matching implementation cannot be
correct: :math:`|a - C| \ge |F - C| - |a - F| > \tau_C`. So a correct
implementation is never given a diagnosis, whatever the catalogue holds; and an
implementation with a second bug that shows on any probe matches nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from softmax_verify.core.compare import error_ratio, find_mismatch

__all__ = ["MIN_DIFFERING", "Tally", "deviation", "shortest"]

F64 = NDArray[np.float64]

#: Probes on which a named formula must differ from the correct one.
MIN_DIFFERING = 3


def deviation(a: NDArray[Any], b: NDArray[Any]) -> float:
    """``max |a - b|``, with NaN against NaN (and equal infinities) as 0, NaN against a number
    as inf."""
    a64, b64 = np.asarray(a, np.float64), np.asarray(b, np.float64)
    with np.errstate(all="ignore"):
        err = np.abs(a64 - b64)
        same = (a64 == b64) | (np.isnan(a64) & np.isnan(b64))
    err = np.where(same, 0.0, np.where(np.isnan(err), np.inf, err))
    return float(err.max()) if err.size else 0.0


def shortest(value: float, delta: float) -> str:
    """``value`` with the fewest significant digits that stay within its relative error
    bound ``delta``: an estimate of 9.9987e-05 known to 0.1% reads 0.0001."""
    for digits in range(1, 9):
        rounded = float(f"{value:.{digits}g}")
        if abs(rounded - value) <= delta * abs(value):
            return f"{rounded:.{digits}g}"
    return f"{value:.9g}"


@dataclass
class Tally:
    """One candidate's record over the probes of one dtype."""

    probes: int = 0
    matched: bool = True
    differing: int = 0
    #: Largest |a - F|, the tolerance where |a - F| / tau_F is largest, and largest |a - C|.
    worst: float = 0.0
    worst_tolerance: float = 0.0
    worst_ratio: float = 0.0
    from_correct: float = 0.0
    labels: list[str] = field(default_factory=list)

    def add(
        self,
        label: str,
        actual: NDArray[Any],
        formula: F64,
        tol_formula: F64,
        correct: F64,
        tol_correct: F64,
        *,
        differs: bool | None = None,
    ) -> None:
        """Record one probe. ``differs`` overrides the rule above (reduced_precision)."""
        self.probes += 1
        self.labels.append(label)
        if find_mismatch(actual, formula, tol_formula, what="") is not None:
            self.matched = False
        if differs is None:
            gap = find_mismatch(formula, correct, tol_formula + tol_correct, what="")
            differs = gap is not None
        self.differing += bool(differs)
        self.worst = max(self.worst, deviation(actual, formula))
        self.from_correct = max(self.from_correct, deviation(actual, correct))
        with np.errstate(all="ignore"):
            err = np.abs(np.asarray(actual, np.float64) - formula)
            ratio = np.where(np.isfinite(err), error_ratio(err, tol_formula), 0.0)
        if ratio.size and float(ratio.max()) >= self.worst_ratio:
            self.worst_ratio = float(ratio.max())
            self.worst_tolerance = float(
                np.broadcast_to(tol_formula, ratio.shape).flat[int(np.argmax(ratio))]
            )

    def fail(self) -> None:
        """The candidate could not be evaluated on a probe (e.g. the code raised)."""
        self.probes += 1
        self.matched = False

    @property
    def proven(self) -> bool:
        return self.matched and self.differing >= MIN_DIFFERING

    def evidence(self, dtype: str) -> str:
        return (
            f"{dtype}: on {self.probes} probes the largest deviation from this formula is "
            f"{self.worst:.3g} (within its derived tolerance, {self.worst_tolerance:.3g} at the "
            f"tightest entry), against {self.from_correct:.3g} from the correct one; the two "
            f"formulas differ beyond tolerance on {self.differing} probes"
        )
