"""A pytest contract: subclass ``SoftmaxContract`` in your own test suite.

    from softmax_verify.testing import SoftmaxContract
    import mymodel

    class TestMySoftmax(SoftmaxContract):
        forward = staticmethod(mymodel.softmax_forward)
        backward = staticmethod(mymodel.softmax_backward)   # optional
        dtypes = ("float32", "float64")                     # optional (the default)
        domain = Domain(cols=(128, 8192), cols_multiple_of=128)  # optional: shapes it supports
        accumulate = "float32"                   # optional: half-precision model (or "input")

    ``forward`` may also be a layer class or instance (``forward = MySoftmaxLayer``);
    ``grad``, ``grad_at``, ``rowwise``, ``axis`` and ``rank`` say how to read the code,
    as ``softmax-verify check`` options do (see ``softmax_verify.target.conventions``).
    For a log_softmax set ``kind = "log_softmax"``; ``masked = True`` adds the checks on
    rows with masked (-inf) entries. For softmax fused with the cross-entropy loss set
    ``kind = "cross_entropy"``: ``forward`` is then the loss (a function of ``(x, labels)``
    or a loss layer) and ``backward`` its gradient function, if separate; ``labels`` and
    ``reduction`` say what it takes and returns. Only the invariants of that kind are
    collected.

    ``class TestMySoftmax(SoftmaxContract, exclude=("stage_gradients",))`` leaves
    invariants out of collection (e.g. stage localization for a backward that returns
    dx alone, which would otherwise be skipped with that reason).

pytest then collects one test per invariant and dtype
(``test_rows_sum_to_one[float32]``, ...), each a Hypothesis property run under your
active Hypothesis profile (its example count, seed and example database), shrunk
as ``softmax-verify check`` shrinks: no deadline (each call has ``timeout``
instead), one bug at a time, no explain phase. A failure reads like the command's
report: the invariant, what was compared, the location in your code when known and
the minimal counterexample as numpy arrays, with no frame of this package in the
traceback. Backward invariants are skipped, with the reason, when no backward is set.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import pytest
from hypothesis import settings

from softmax_verify.core.domain import Domain
from softmax_verify.core.implementation import Implementation
from softmax_verify.core.kinds import Kind, check_kind
from softmax_verify.core.loss_implementation import LossImplementation
from softmax_verify.core.options import (
    DEFAULT_DTYPES,
    Accumulation,
    LabelForm,
    Options,
    Reduction,
)
from softmax_verify.core.validate import resolve_dtype
from softmax_verify.diagnosis import describe, diagnose
from softmax_verify.invariants import ALL_IDS, REGISTRY, get_invariant, invariants_for
from softmax_verify.run.memory import MemoryShortage, check_memory
from softmax_verify.run.runner import run_invariant
from softmax_verify.run.text import failure_text
from softmax_verify.target.conventions import implementation_from, loss_implementation_from

__all__ = ["SoftmaxContract"]


def _contract_test(invariant_id: str) -> Callable[[Any, str], None]:
    def test(self: SoftmaxContract, dtype: str) -> None:
        inv = get_invariant(invariant_id, type(self).kind)
        impl = type(self).implementation()
        if inv.needs_backward and not impl.has_backward:
            pytest.skip("no backward set on the contract class")  # forward-only contract: by design
        # The active profile (the user's), with the command's shrinking: one bug, no explain.
        cls = type(self)
        options = cls.options()
        try:  # a domain whose cases cannot be held: the class's declaration, said so
            check_memory(options.domain, [[resolve_dtype(dtype, "dtypes")]], kind=options.kind)
        except MemoryShortage as exc:
            pytest.fail(exc.explain(f"{cls.__name__}.domain"), pytrace=False)
        result = run_invariant(
            inv,
            impl,
            resolve_dtype(dtype, "dtypes"),
            base=settings.default,
            domain=options.domain,
            accumulate=options.accumulate,
            kind=options.kind,
            loss=options.loss,
        )
        if result.status == "skipped":
            # Not a hidden failure: the invariant cannot be checked on this implementation
            # (e.g. stage_gradients on a cache without named stages), and a pass would claim
            # a check that never ran. exclude= leaves it out of the contract instead.
            pytest.skip(f"{inv.id} does not apply: {result.message}")
        if result.status != "passed":
            verdict = "failed" if result.status == "failed" else "errored"
            found = diagnose(
                impl, [result], [dtype], accumulate=options.accumulate, kind=options.kind
            )
            text = "\n".join([failure_text(result), "", *describe(found, [(inv.id, dtype)])])
            text = text.replace("\n", "\n  ")
            # The message is the whole failure: no traceback, so no frame of this package.
            pytest.fail(f"{inv.id} ({dtype}) {verdict}: {text}", pytrace=False)

    test.__name__ = test.__qualname__ = f"test_{invariant_id}"
    test.__doc__ = next(inv.doc for inv in REGISTRY if inv.id == invariant_id)
    return test


class SoftmaxContract:
    """Base class; set ``forward`` (and ``backward``) on a subclass named ``Test...``."""

    forward: ClassVar[Any] = None
    backward: ClassVar[Callable[..., Any] | None] = None
    dtypes: ClassVar[tuple[str, ...]] = DEFAULT_DTYPES
    #: Seconds one call of the implementation may take before it counts as an error.
    timeout: ClassVar[float | None] = 10.0
    #: The shapes the implementation supports (None: every shape is drawn).
    domain: ClassVar[Domain | None] = None
    #: The accumulation model half-precision dtypes are judged by (``Options.accumulate``).
    accumulate: ClassVar[Accumulation] = "float32"
    #: How to read the code (``Options``: docs/conventions.md).
    grad: ClassVar[str | None] = None
    grad_at: ClassVar[str | None] = None
    rowwise: ClassVar[bool] = False
    axis: ClassVar[int] = -1
    rank: ClassVar[int] = 2
    #: What the code computes: "softmax" or "log_softmax" (softmax_verify.core.kinds).
    kind: ClassVar[Kind] = "softmax"
    #: Also check rows with masked (-inf) entries.
    masked: ClassVar[bool] = False
    #: A cross-entropy target's label argument ("index", "onehot", "probs") and the scalar its
    #: gradient is the gradient of ("mean", "sum", "none") (``Options.labels``, ``reduction``).
    labels: ClassVar[LabelForm] = "index"
    reduction: ClassVar[Reduction] = "mean"
    _excluded: ClassVar[frozenset[str]] = frozenset()

    def __init_subclass__(cls, exclude: tuple[str, ...] = (), **kwargs: Any) -> None:
        """``class TestX(SoftmaxContract, exclude=("stage_gradients",))`` leaves those out.

        An excluded invariant's test is not collected at all (rather than skipped): for
        an invariant that cannot apply, e.g. stage_gradients on a backward that returns
        dx alone.
        """
        super().__init_subclass__(**kwargs)
        check_kind(cls.kind, f"{cls.__name__}.kind")
        applicable = {inv.id for inv in invariants_for(cls.kind, masked=cls.masked)}
        for invariant_id in ALL_IDS:
            name = f"test_{invariant_id}"
            if invariant_id not in applicable:
                if hasattr(cls, name):
                    setattr(cls, name, None)  # another kind's property: not collected
            elif getattr(cls, name, None) is None and invariant_id not in cls._excluded:
                setattr(cls, name, _contract_test(invariant_id))
        cls._excluded = cls._excluded | frozenset(exclude)
        for invariant_id in exclude:
            get_invariant(invariant_id, cls.kind)  # ValueError naming the ids for a typo
            setattr(cls, f"test_{invariant_id}", None)

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        """One test per invariant and dtype: ``test_rows_sum_to_one[float32]``."""
        if "dtype" in metafunc.fixturenames:
            names = [resolve_dtype(d, "dtypes").name for d in type(self).dtypes]
            metafunc.parametrize("dtype", names, ids=names)

    @classmethod
    def options(cls) -> Options:
        """The run's ``Options`` from this class's attributes (as ``verify`` and the command
        line build them); the profile is the user's active one, not an option here."""
        return Options(
            kind=cls.kind,
            dtypes=cls.dtypes,
            masked=cls.masked,
            accumulate=cls.accumulate,
            domain=Domain() if cls.domain is None else cls.domain,
            timeout=cls.timeout,
            grad=cls.grad,
            grad_at=cls.grad_at,
            rowwise=cls.rowwise,
            axis=cls.axis,
            rank=cls.rank,
            labels=cls.labels,
            reduction=cls.reduction,
        )

    @classmethod
    def implementation(cls) -> Implementation | LossImplementation:
        """The code under test, read as the attributes say: a softmax's forward and backward,
        or (``kind = "cross_entropy"``) a loss and its gradient."""
        if cls.forward is None:
            raise TypeError(f"{cls.__name__}.forward must be set to the softmax forward callable")
        options = cls.options()
        if options.kind == "cross_entropy":
            loss, _ = loss_implementation_from(
                cls.forward, cls.backward, options.read, options.loss,
                timeout=options.timeout, name=cls.__name__,
            )  # fmt: skip
            return loss
        impl, _ = implementation_from(
            cls.forward, cls.backward, options.read, timeout=options.timeout, name=cls.__name__
        )
        return impl


for _id in dict.fromkeys(inv.id for inv in invariants_for("softmax")):
    setattr(SoftmaxContract, f"test_{_id}", _contract_test(_id))
del _id
