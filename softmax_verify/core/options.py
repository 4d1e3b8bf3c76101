"""The options of one run: one typed, frozen value, validated once, on construction.

The command line (``softmax-verify check``'s flags), ``verify(..., options=...)`` and the
pytest contract (``SoftmaxContract``'s attributes) each build an ``Options``; the plan
of the run, the target's reading in the child process and the report's reproduce line
all come from it. Adding an option touches this value, its flag (``cli``) and its docs.

- what is checked: ``kind``, ``dtypes``, ``masked``, ``invariants`` (None: all of the
  kind's), ``accumulate`` (the half-precision model, ``tolerances``), ``domain``, and for
  the ``cross_entropy`` kind ``labels`` and ``reduction`` (``loss``: what its label
  argument is, and which scalar its gradient is the gradient of);
- how the properties run: ``profile``, ``max_examples``, ``seed``;
- how the target is called: ``timeout`` (seconds per call; None or inf: no limit);
- how it is read (``read``, docs/conventions.md): ``grad``, ``grad_at``, ``rowwise``,
  ``axis``, ``rank``, and ``autodiff``/``device`` for code written with a framework's ops.

Whether a name is a registered Hypothesis profile, and whether the invariant ids exist
for the kind, are checked when the run is planned (``run.plan``): both need the
engine, which this module, imported by the child process too, does not import.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from softmax_verify.core.domain import Domain
from softmax_verify.core.kinds import SOFTMAX_KINDS, Kind, check_kind
from softmax_verify.core.validate import resolve_dtype

__all__ = [
    "ACCUMULATIONS",
    "AUTODIFF",
    "DEFAULT_DTYPES",
    "GRADS",
    "GRAD_AT",
    "LABEL_FORMS",
    "RANKS",
    "REDUCTIONS",
    "Accumulation",
    "LabelForm",
    "LossOptions",
    "Options",
    "ReadOptions",
    "Reduction",
]

#: The dtypes checked when none are named: a softmax is often right in float64 and
#: wrong in float32 (overflow at logits above about 88, a float64 accumulator dropped).
DEFAULT_DTYPES: tuple[str, ...] = ("float32", "float64")
#: How half-precision tolerances model the accumulation (``tolerances``): in float32 or
#: wider, rounded once to the half dtype (production kernels); in the half dtype itself, with
#: independent zero-mean rounding errors (probabilistic bounds, Higham and Mary 2019); or in
#: the half dtype, worst case (every rounding error of one sign, subnormals flushed).
Accumulation = Literal["float32", "input", "input-worst-case"]
ACCUMULATIONS: tuple[Accumulation, ...] = ("float32", "input", "input-worst-case")
#: The libraries whose autodiff can supply the backward (``target.autodiff``, a module each).
AUTODIFF: tuple[str, ...] = ("torch", "jax", "tensorflow", "autograd", "mygrad")
#: What a backward computes: a vector-Jacobian product, an elementwise derivative g with
#: dx = dout * g, or the Jacobian J with dx = J^T dout per row.
GRADS: tuple[str, ...] = ("vjp", "elementwise", "jacobian")
#: What an elementwise or Jacobian function receives: the forward's input or its output.
GRAD_AT: tuple[str, ...] = ("x", "y")
#: Ranks of the code's own layout that can be checked (attention scores are rank 4).
RANKS: tuple[int, ...] = (2, 3, 4)
#: What a cross-entropy target's label argument is: integer class indices, one-hot rows in
#: the logits' dtype, or probability rows (soft targets: label smoothing, distillation).
LabelForm = Literal["index", "onehot", "probs"]
LABEL_FORMS: tuple[LabelForm, ...] = ("index", "onehot", "probs")
#: Which scalar a cross-entropy gradient is the gradient of: the batch mean of the rows'
#: losses, their sum, or none (the rows' losses themselves, with an upstream vector of N).
Reduction = Literal["mean", "sum", "none"]
REDUCTIONS: tuple[Reduction, ...] = ("mean", "sum", "none")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class ReadOptions:
    """How to read the code under test (docs/conventions.md): the reading part of ``Options``.

    - ``grad``: what the backward computes, one of ``GRADS``; None detects it where the
      code makes it unambiguous (a method named gradient or derivative, a function of
      one array, a returned (..., D, D) array) and is vjp otherwise.
    - ``grad_at``: what an elementwise or Jacobian function receives, "x" or "y"; None
      means "x". A method without parameters reads its object's state instead.
    - ``rowwise``: the code is written for one 1-D row; it is called once per row.
    - ``axis``: the softmax axis in the code's own layout (default -1).
    - ``rank``: the rank of the code's own layout, 2, 3 or 4 (default 2).
    """

    grad: str | None = None
    grad_at: str | None = None
    rowwise: bool = False
    axis: int = -1
    rank: int = 2

    def __post_init__(self) -> None:
        if self.grad is not None and self.grad not in GRADS:
            raise ValueError(f"grad must be one of {', '.join(GRADS)} or None, got {self.grad!r}")
        if self.grad_at is not None and self.grad_at not in GRAD_AT:
            raise ValueError(f"grad_at must be 'x', 'y' or None, got {self.grad_at!r}")
        if self.grad_at is not None and self.grad == "vjp":
            raise ValueError(
                f"grad_at={self.grad_at!r} says what an elementwise or Jacobian function "
                f"receives; it does not apply with grad='vjp'"
            )
        if not isinstance(self.rowwise, bool):
            raise TypeError(f"rowwise must be a bool, got {self.rowwise!r}")
        if not _is_int(self.rank) or self.rank not in RANKS:
            raise ValueError(f"rank must be 2, 3 or 4, got {self.rank!r}")
        if not _is_int(self.axis) or not -self.rank <= self.axis < self.rank:
            raise ValueError(
                f"axis must be an int in [{-self.rank}, {self.rank - 1}] for rank "
                f"{self.rank}, got {self.axis!r}"
            )
        if self.rowwise and (self.rank != 2 or self.axis not in (-1, 1)):
            raise ValueError(
                f"rowwise=True calls code written for one 1-D row: axis and rank do not "
                f"apply, got axis={self.axis!r}, rank={self.rank!r}"
            )

    @property
    def canonical_axis(self) -> int:
        """``axis`` as a non-negative index into the code's layout."""
        return self.axis % self.rank


@dataclass(frozen=True)
class LossOptions:
    """What a ``cross_entropy`` target takes and returns: the loss part of ``Options``.

    - ``labels``: its label argument, one of ``LABEL_FORMS``: ``"index"`` (int64 class
      indices, one per row), ``"onehot"`` (one-hot rows in x's dtype) or ``"probs"``
      (probability rows in x's dtype, each summing to exactly 1);
    - ``reduction``: one of ``REDUCTIONS``: the gradient is that of the batch mean of the
      rows' losses (``"mean"``, the default: the courses', the books' and torch's
      convention), of their sum, or (``"none"``) of the rows' losses weighted by an
      upstream vector of N. A loss returned per row is accepted under each and compared
      row by row.
    """

    labels: LabelForm = "index"
    reduction: Reduction = "mean"

    def __post_init__(self) -> None:
        if self.labels not in LABEL_FORMS:
            raise ValueError(f"labels must be one of {', '.join(LABEL_FORMS)}; got {self.labels!r}")
        if self.reduction not in REDUCTIONS:
            raise ValueError(
                f"reduction must be one of {', '.join(REDUCTIONS)}; got {self.reduction!r}"
            )


def _dtype_names(dtypes: object) -> tuple[str, ...]:
    if isinstance(dtypes, str):
        raise TypeError(f"dtypes must be a sequence of dtype names, got the string {dtypes!r}")
    if not isinstance(dtypes, Iterable):
        raise TypeError(f"dtypes must be a sequence of dtype names, got {dtypes!r}")
    names = tuple(dict.fromkeys(resolve_dtype(d, "dtypes").name for d in dtypes))
    if not names:
        raise ValueError("dtypes must name at least one dtype, got an empty sequence")
    return names


def _invariant_ids(invariants: object) -> tuple[str, ...] | None:
    if invariants is None:
        return None
    if isinstance(invariants, str) or not isinstance(invariants, Iterable):
        raise TypeError(
            f"invariants must be a sequence of invariant ids or None, got {invariants!r}"
        )
    ids = tuple(invariants)
    for item in ids:
        if not isinstance(item, str):
            raise TypeError(f"invariants must hold invariant ids (str), got {item!r}")
    # An id named twice is checked once: a second run would only repeat the first.
    return tuple(dict.fromkeys(ids))


def _check_count(value: object, name: str, expected: str, *, minimum: int) -> None:
    """None, or an int (not a bool) of at least ``minimum``."""
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, int) or value < minimum
    ):
        raise ValueError(f"{name} must be {expected} or None, got {value!r}")


def _check_timeout(timeout: object) -> float | None:
    """None, or a positive number of seconds (inf: no limit, as None)."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise ValueError(f"timeout must be a positive number of seconds or None, got {timeout!r}")
    return None if math.isinf(timeout) else float(timeout)


@dataclass(frozen=True)
class Options:
    """Everything one run is told (see the module docstring), validated on construction:
    a ``TypeError`` or ``ValueError`` naming the field. Sequences are stored as tuples,
    dtypes by name; ``timeout=math.inf`` is stored as None (no limit)."""

    kind: Kind = "softmax"
    #: Stored as a tuple of names; given as any sequence of dtype names or dtypes.
    dtypes: Sequence[Any] = DEFAULT_DTYPES
    masked: bool = False
    #: Stored as a tuple of ids (each once) or None; given as any sequence of ids.
    invariants: Sequence[str] | None = None
    accumulate: Accumulation = "float32"
    domain: Domain = field(default_factory=Domain)
    profile: str = "ci"
    max_examples: int | None = None
    seed: int | None = None
    timeout: float | None = 10.0
    grad: str | None = None
    grad_at: str | None = None
    rowwise: bool = False
    axis: int = -1
    rank: int = 2
    autodiff: str | None = None
    device: str = "cpu"
    labels: LabelForm = "index"
    reduction: Reduction = "mean"

    def __post_init__(self) -> None:
        normal = {
            "kind": check_kind(self.kind),
            "dtypes": _dtype_names(self.dtypes),
            "invariants": _invariant_ids(self.invariants),
            "timeout": _check_timeout(self.timeout),
        }
        for name, value in normal.items():
            object.__setattr__(self, name, value)  # frozen: the normal form, once
        if not isinstance(self.masked, bool):
            raise TypeError(f"masked must be a bool, got {self.masked!r}")
        if self.accumulate not in ACCUMULATIONS:
            raise ValueError(
                f"accumulate must be one of {', '.join(ACCUMULATIONS)}; got {self.accumulate!r}"
            )
        if not isinstance(self.domain, Domain):
            raise TypeError(f"domain must be a softmax_verify.Domain, got {self.domain!r}")
        if not isinstance(self.profile, str):
            raise TypeError(
                f"profile must be the name of a Hypothesis profile, got {self.profile!r}"
            )
        _check_count(self.max_examples, "max_examples", "a positive int", minimum=1)
        _check_count(self.seed, "seed", "a non-negative int", minimum=0)
        ReadOptions(self.grad, self.grad_at, self.rowwise, self.axis, self.rank)  # validates them
        if self.autodiff is not None and self.autodiff not in AUTODIFF:
            raise ValueError(
                f"autodiff must be one of {', '.join(AUTODIFF)} or None; got {self.autodiff!r}"
            )
        if not isinstance(self.device, str):
            raise TypeError(f"device must be a str such as 'cpu' or 'cuda:0', got {self.device!r}")
        LossOptions(self.labels, self.reduction)  # validates them
        _check_for_kind(self)

    @property
    def read(self) -> ReadOptions:
        """How to read the target (docs/conventions.md)."""
        return ReadOptions(self.grad, self.grad_at, self.rowwise, self.axis, self.rank)

    @property
    def loss(self) -> LossOptions:
        """What a cross-entropy target takes and returns (docs/cross_entropy.md)."""
        return LossOptions(self.labels, self.reduction)

    def replace(self, **changes: Any) -> Options:
        """This value with ``changes`` (validated again)."""
        return dataclasses.replace(self, **changes)


def _check_for_kind(options: Options) -> None:
    """A field that does not apply to ``options.kind``, set to other than its default, is a
    ValueError naming it: it would otherwise be silently ignored.

    ``labels`` and ``reduction`` describe a cross-entropy target. ``masked``, ``grad``,
    ``grad_at`` and ``rowwise`` describe the softmax kinds: a cross-entropy target is
    called as ``loss(x, labels)`` on (N, C) logits (other layouts through ``axis`` and
    ``rank``), its strategies draw finite logits, and its gradient is always a VJP.
    """
    kind = options.kind
    if kind in SOFTMAX_KINDS:
        for name, default in (("labels", "index"), ("reduction", "mean")):
            value = getattr(options, name)
            if value != default:
                raise ValueError(
                    f"{name} applies to kind='cross_entropy' only; got {name}={value!r} "
                    f"with kind={kind!r}"
                )
        return
    softmax_only: tuple[tuple[str, object], ...] = (
        ("masked", False),
        ("grad", None),
        ("grad_at", None),
        ("rowwise", False),
    )
    for name, unset in softmax_only:
        value = getattr(options, name)
        if value != unset:
            raise ValueError(
                f"{name} applies to the softmax kinds ({', '.join(SOFTMAX_KINDS)}) only; got "
                f"{name}={value!r} with kind={kind!r}"
            )
