"""Failure regions: re-run a failing invariant on families of probe cases.

A region is named when the invariant fails on at least ``MIN_FAILING`` cases of the
family where it is claimed to fail and holds on every case of the complementary
family: "fails only when N == D" means it failed on square cases and held on every
non-square one tried. Cases are built from the failure's counterexample, key by key
(``x`` fresh moderate logits, a constant upstream kept constant, scalars kept), so
each check gets the kind of input its strategy draws. Invariants whose cases need a
special input domain (central_differences: well-conditioned logits) are not re-run.
The checks are those of the run's kind, under the run's accumulation model.

A region's fix is printed only where the region itself implies it (``REGION_FIXES``,
``large_logit_fix``): a failure that starts where exp overflows says the maximum is not
subtracted, one that starts at float32's largest value says the logits are cast to float32;
a threshold that matches no known limit gets no fix, nor does "only when D > 1" (most
mistakes are invisible on rows of one entry, so it names no cause).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from softmax_verify.core.dtypes import finfo
from softmax_verify.core.errors import (
    CallTimeout,
    ImplementationError,
    InvariantViolation,
    NotApplicable,
)
from softmax_verify.core.implementation import Implementation
from softmax_verify.core.kinds import Kind
from softmax_verify.core.loss_implementation import LossImplementation
from softmax_verify.core.options import Accumulation
from softmax_verify.core.validate import resolve_dtype
from softmax_verify.diagnosis._probes import SEED
from softmax_verify.invariants import Case, Invariant, get_invariant

if TYPE_CHECKING:
    from softmax_verify.core.result import Result

__all__ = [
    "BLOCKS",
    "REGION_FIXES",
    "Hit",
    "Runner",
    "ladder_base",
    "large_logit_fix",
    "large_region",
    "merge",
    "region_findings",
]

MIN_FAILING = 2
#: Block sizes a remainder bug is looked for at (the largest consistent one is named): the
#: row lengths tried are 1..33 and, for each block b, b - 1, b, b + 1, 2b - 1, 2b, 2b + 1, 3b.
BLOCKS = (2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
#: Logit magnitudes of the large-logit ladder (below the dtype's max / 2, which is added).
RUNGS: tuple[float, ...] = tuple(2.0**k for k in range(13)) + tuple(
    10.0**k for k in (4, 5, 6, 8, 12, 16, 24, 32, 64, 128, 256)
)
_SKIP = frozenset({"central_differences"})
#: Invariants whose cases may hold logits of any magnitude (their strategies draw up to max).
_ANY_MAGNITUDE = frozenset(
    {
        "finite_for_finite_input",
        "rows_sum_to_one",
        "outputs_in_unit_interval",
        "dtype_preserved",
        "input_not_mutated",
        "permutation_equivariance",
        "row_independence",
        "matches_reference",
        "ones_upstream_gives_zero",
        "backward_matches_reference",
    }
)
_KNOWN_KEYS = frozenset({"x", "dout", "u", "v", "shift", "perm", "a", "b"})

#: (region id, shapes where it should fail, shapes where it must hold, condition text)
FAMILIES: tuple[tuple[str, tuple[tuple[int, int], ...], tuple[tuple[int, int], ...], str], ...] = (
    (
        "only_when_n_equals_d",
        ((2, 2), (3, 3), (4, 4), (5, 5), (7, 7)),
        ((2, 3), (3, 2), (4, 6), (6, 4), (3, 7), (5, 2)),
        "N == D (square input)",
    ),
    (
        "only_when_n_gt_1",
        ((2, 5), (3, 8), (4, 3), (6, 13), (5, 5)),
        ((1, 2), (1, 3), (1, 5), (1, 8), (1, 13)),
        "N > 1 (more than one row)",
    ),
    (
        "only_when_d_gt_1",
        ((2, 3), (3, 5), (1, 4), (5, 8)),
        ((1, 1), (2, 1), (4, 1), (7, 1)),
        "D > 1 (rows longer than one entry)",
    ),
)


def _constant(a: NDArray[Any]) -> bool:
    return a.size > 0 and bool(np.all(a == a.flat[0]))


def _builder(template: Case) -> Callable[..., Case] | None:
    """A maker of cases shaped like ``template`` at any (N, D), or None for unknown keys."""
    if not set(template) <= _KNOWN_KEYS or "x" not in template:
        return None
    dtype = template["x"].dtype

    def build(
        shape: tuple[int, int], rng: np.random.Generator, x: NDArray[Any] | None = None
    ) -> Case:
        case: Case = {}
        for key, value in template.items():
            if key == "x":
                case[key] = (rng.normal(0.0, 2.0, shape) if x is None else x).astype(dtype)
            elif key == "perm":
                case[key] = rng.permutation(shape[1])
            elif key == "shift":
                case[key] = rng.normal(0.0, 100.0, (shape[0], 1)).astype(dtype)
            elif value.ndim == 0:
                case[key] = value.copy()
            elif _constant(value):
                case[key] = np.full(shape, value.flat[0], dtype=value.dtype)
            else:
                case[key] = rng.normal(0.0, 1.0, shape).astype(value.dtype)
        return case

    return build


class Runner:
    """Re-runs one invariant under the run's accumulation model; stops answering (None) once
    the time budget is spent."""

    def __init__(
        self,
        impl: Implementation | LossImplementation,
        inv: Invariant[Any],
        deadline: float,
        accumulate: Accumulation,
    ) -> None:
        self.impl, self.inv, self.deadline = impl, inv, deadline
        self.accumulate = accumulate

    def fails(self, case: Case) -> bool | None:
        if time.monotonic() > self.deadline:
            return None
        try:
            # The checks' own arithmetic on NaN or inf output is expected here, not a warning.
            with np.errstate(all="ignore"):
                self.inv.check(self.impl, case, self.accumulate)
        except CallTimeout:  # every further case could wait as long: stop probing
            self.deadline = -np.inf
            return None
        except (InvariantViolation, ImplementationError):
            return True
        except NotApplicable:
            return None
        except Exception:  # a case this check cannot take: no evidence either way
            return None
        return False


def _count(run: Runner, build: Callable[..., Case], shapes: Any, rng: Any) -> tuple[int, int]:
    """(failures, cases run) over ``shapes``; (-1, 0) when the budget ran out."""
    failed = 0
    for shape in shapes:
        verdict = run.fails(build(shape, rng))
        if verdict is None:
            return -1, 0
        failed += verdict
    return failed, len(shapes)


@dataclass(frozen=True)
class Hit:
    """One region of one failing (invariant, dtype); ``param`` the block size or threshold."""

    region: str
    invariant: str
    dtype: str
    evidence: str
    param: float | None = None


def _shape_regions(run: Runner, build: Callable[..., Case], dtype: str) -> list[Hit]:
    out = []
    rng = np.random.default_rng(SEED + 2)
    for region, inside, outside, condition in FAMILIES:
        failed_in, n_in = _count(run, build, inside, rng)
        failed_out, n_out = _count(run, build, outside, rng)
        if failed_in >= MIN_FAILING and failed_out == 0 and n_out:
            evidence = (
                f"failed on {failed_in} of {n_in} cases with {condition}, held on all {n_out}"
            )
            out.append(Hit(region, run.inv.id, dtype, evidence + " others"))
    block = _block_region(run, build, rng, dtype)
    if block is not None:
        out.append(block)
    return out


#: The row lengths the block region is probed at.
BLOCK_LENGTHS: tuple[int, ...] = tuple(
    sorted(
        set(range(1, 34))
        | {k * b + e for b in BLOCKS for k in (1, 2) for e in (-1, 0, 1)}
        | {3 * b for b in BLOCKS}
    )
)


def _block_region(
    run: Runner, build: Callable[..., Case], rng: np.random.Generator, dtype: str
) -> Hit | None:
    """``only_when_d_not_multiple_of_block``: on the ``BLOCK_LENGTHS``, fails exactly where
    D % b != 0 (a remainder mishandled at every length), or exactly where D % b != 0 and
    D > b (a tail after the last full block dropped: a row of at most one block is one
    partial block, and right)."""
    failing = set()
    for d in BLOCK_LENGTHS:
        verdict = run.fails(build((3, d), rng))
        if verdict is None:
            return None
        if verdict:
            failing.add(d)
    for b in reversed(BLOCKS):
        remainder = {d for d in BLOCK_LENGTHS if d % b}
        tail = {d for d in remainder if d > b}
        for pattern, after in ((remainder, ""), (tail, f" and D > {b}")):
            if failing == pattern and len(failing) >= MIN_FAILING:
                evidence = (
                    f"failed for every D tried with D % {b} != 0{after}, held for every other "
                    f"D tried ({len(BLOCK_LENGTHS)} lengths from 1 to {BLOCK_LENGTHS[-1]})"
                )
                return Hit("only_when_d_not_multiple_of_block", run.inv.id, dtype, evidence, b)
    return None


def ladder_base(rng: np.random.Generator | None = None) -> NDArray[np.float64]:
    """The (3, 5) rows the large-logit ladder scales, ``max |base| = 1``: drawn from
    ``rng`` (default: a fresh one of the ladder's seed, which gives the same rows)."""
    rng = np.random.default_rng(SEED + 3) if rng is None else rng
    base = rng.uniform(-1.0, 1.0, (3, 5))
    out: NDArray[np.float64] = base / np.abs(base).max()
    return out


def large_region(
    run: Runner, build: Callable[..., Case], dtype: str, *, share: float = 0.5
) -> Hit | None:
    """``only_for_large_logits``: holds up to some logit magnitude, fails beyond it.

    Logits ``s * base`` with ``max |base| = 1`` along ``RUNGS`` (doublings to 4096, then
    ever sparser up to ``share`` of the dtype's max, half by default): it must hold at
    s <= 16, fail at the first failing rung and at every rung after it; the threshold is
    then bisected between the last holding and first failing s.
    """
    rng = np.random.default_rng(SEED + 3)
    base = ladder_base(rng)
    template = build((3, 5), rng)
    top = float(finfo(template["x"].dtype).max) * share

    def at(s: float) -> bool | None:
        case = dict(template)
        case["x"] = (base * s).astype(template["x"].dtype)
        return run.fails(case)

    rungs = [s for s in RUNGS if s < top] + [top]
    verdicts = []
    for s in rungs:
        verdict = at(s)
        if verdict is None:
            return None
        verdicts.append(verdict)
    if True not in verdicts:
        return None
    first = verdicts.index(True)
    if rungs[first] <= 16 or not all(verdicts[first:]):
        return None
    low, high = rungs[first - 1], rungs[first]
    for _ in range(40):
        # Geometric where the bracket spans decades (1e32 to 1e64: halving it 40 times would
        # leave 1e64 / 2**40, about 9e51, of doubt); arithmetic within a factor of two.
        mid = math.sqrt(low * high) if high > 2 * low else (low + high) / 2
        verdict = at(mid)
        if verdict is None:
            break
        low, high = (low, mid) if verdict else (mid, high)
    evidence = (
        f"held for every largest |x| up to {low:.7g}, failed at {high:.7g} and at every "
        f"larger magnitude tried after it (up to {rungs[-1]:.3g})"
    )
    return Hit("only_for_large_logits", run.inv.id, dtype, evidence, high)


def _other_dtype(run: Runner, r: Result, other: str) -> Hit | None:
    """``only_at_<dtype>``: passed at the other dtype in the run, and the counterexample
    itself, converted to the other dtype, holds there."""
    assert r.counterexample is not None
    with np.errstate(over="ignore"):  # a float64 logit beyond float32's range becomes inf
        converted = {
            k: v.astype(other) if v.dtype.kind == "f" else v for k, v in r.counterexample.items()
        }
    if run.fails(converted) is not False:
        return None
    evidence = (
        f"passed at {other} on the run's examples, and the {r.dtype} counterexample "
        f"converted to {other} holds there"
    )
    return Hit(f"only_at_{r.dtype}", r.invariant, r.dtype, evidence)


def region_findings(
    impl: Implementation,
    results: list[Result],
    explained: set[str],
    deadline: float,
    *,
    kind: Kind = "softmax",
    accumulate: Accumulation = "float32",
) -> list[Hit]:
    """Every region a failure of ``results`` has, one Hit per (region, invariant, dtype): the
    checks of ``kind``, re-run under the run's ``accumulate`` model."""
    out: list[Hit] = []
    status = {(r.invariant, r.dtype): r.status for r in results}
    for r in results:
        if r.status != "failed" or r.counterexample is None:
            continue
        run = Runner(impl, get_invariant(r.invariant, kind), deadline, accumulate)
        other = {"float32": "float64", "float64": "float32"}.get(r.dtype)
        if other is not None and status.get((r.invariant, other)) == "passed":
            hit = _other_dtype(run, r, other)
            if hit is not None:
                out.append(hit)
        build = _builder(r.counterexample)
        if build is None or r.invariant in _SKIP:
            continue
        for hit in _shape_regions(run, build, r.dtype):
            if not (hit.region == "only_when_d_gt_1" and r.invariant in explained):
                out.append(hit)  # (D > 1 is left out where a named formula already explains)
        if r.invariant in _ANY_MAGNITUDE:
            large = large_region(run, build, r.dtype)
            if large is not None:
                out.append(large)
    return out


_CONDITIONS = {
    "only_when_n_equals_d": "only when N == D (square input)",
    "only_when_n_gt_1": "only when N > 1 (more than one row)",
    "only_when_d_gt_1": "only when D > 1 (rows longer than one entry)",
    "only_at_float32": "only at float32",
    "only_at_float64": "only at float64",
}


def merge(hits: list[Hit]) -> list[tuple[str, str, str, str]]:
    """(region id, summary, evidence, fix): one per region (and block size), invariants
    listed; the fix as the region supports it (module docstring), else empty."""
    groups: dict[tuple[str, float | None], list[Hit]] = {}
    for hit in hits:
        key = (hit.region, None if hit.region == "only_for_large_logits" else hit.param)
        groups.setdefault(key, []).append(hit)
    out = []
    for (region, param), group in groups.items():
        names = list(dict.fromkeys(h.invariant for h in group))
        subject = (", ".join(names[:-1]) + " and " + names[-1]) if len(names) > 1 else names[0]
        verb = "fail" if len(names) > 1 else "fails"
        if region == "only_for_large_logits":
            lowest: dict[str, float] = {}
            for h in group:
                assert h.param is not None
                lowest[h.dtype] = min(lowest.get(h.dtype, np.inf), h.param)
            where = ", ".join(f"{t:.4g} at {dt}" for dt, t in lowest.items())
            condition = f"only for large logits, from a largest |x| of about {where}"
            fix = large_logit_fix(lowest)
        elif region == "only_when_d_not_multiple_of_block":
            b = int(param or 0)
            condition = (
                f"only when the row length D is not a multiple of {b} (block size {b}): "
                "the tail after the last full block is mishandled"
            )
            fix = REGION_FIXES[region]
        else:
            condition = _CONDITIONS[region]
            fix = REGION_FIXES[region]
        # Invariants with the same evidence at the same dtype are listed together.
        same: dict[tuple[str, str], list[str]] = {}
        for h in group:
            same.setdefault((h.dtype, h.evidence), []).append(h.invariant)
        evidence = "; ".join(f"{', '.join(i)} at {dt}: {text}" for (dt, text), i in same.items())
        out.append((region, f"{subject} {verb} {condition}", evidence, fix))
    return out


#: Each region's fix, where the region alone implies it ("" prints none).
REGION_FIXES: dict[str, str] = {
    "only_when_n_equals_d": "look for a branch on the shape (x.shape[0] == x.shape[1]) or a "
    "transpose whose effect only square inputs hide; reduce along axis=-1 for every shape",
    "only_when_n_gt_1": "look for row 0 (or one row's value) used for every row: each row "
    "needs its own max and sum, e.g. x.max(axis=-1, keepdims=True)",
    "only_when_d_gt_1": "",
    "only_when_d_not_multiple_of_block": "handle the tail after the last full block (the "
    "D % block remaining columns) in every reduction",
    "only_at_float32": "look for code that depends on the dtype (float32 constants, casts, "
    "a branch on x.dtype)",
    "only_at_float64": "look for code that depends on the dtype (a cast to float32, float32 "
    "buffers, a branch on x.dtype)",
}

#: A threshold within this relative distance of a known limit is taken as that limit (the
#: bisection finds it to far better; float32's and bfloat16's largest values are 0.4 % apart).
_LIMIT_MATCH = 2e-3


def large_logit_fix(thresholds: dict[str, float]) -> str:
    """The fix a large-logit threshold supports, per dtype (``{dtype name: threshold}``): where
    every threshold is exp's overflow (log of the dtype's max) the maximum is not
    subtracted; where every one is the largest value of a narrower float dtype the logits
    are cast to it; otherwise none ("")."""
    if not thresholds:
        return ""
    if all(_near_limit(t, math.log(_largest(dt))) for dt, t in thresholds.items()):
        return "subtract the row maximum before exp: e = np.exp(x - x.max(axis=-1, keepdims=True))"
    for narrow in ("float16", "bfloat16", "float32"):
        try:
            top = _largest(narrow)
        except (TypeError, ValueError):  # bfloat16 without ml_dtypes
            continue
        if all(_near_limit(t, top) and _largest(dt) > top for dt, t in thresholds.items()):
            return (
                f"compute in x's dtype: logits above {narrow}'s largest value ({top:.4g}) "
                f"become inf when cast to {narrow} (look for astype, a {narrow} buffer or "
                "constant)"
            )
    return ""


def _largest(dtype: str) -> float:
    return float(finfo(resolve_dtype(dtype)).max)


def _near_limit(value: float, limit: float) -> bool:
    return abs(value - limit) <= _LIMIT_MATCH * limit
