"""A pytest contract: subclass ``SoftmaxContract`` in your own test suite.

    from softmax_verify.testing import SoftmaxContract
    import mymodel

    class TestMySoftmax(SoftmaxContract):
        forward = staticmethod(mymodel.softmax_forward)
        backward = staticmethod(mymodel.softmax_backward)   # optional
        dtypes = ("float64", "float32")                     # optional

    For a log_softmax set ``kind = "log_softmax"``; ``masked = True`` adds the checks on
    rows with masked (-inf) entries. Only the invariants of that kind are collected.

    ``class TestMySoftmax(SoftmaxContract, exclude=("stage_gradients",))`` leaves
    invariants out of collection (e.g. stage localization for a backward that returns
    dx alone, which would otherwise be skipped with that reason).

pytest then collects one test per invariant (``test_rows_sum_to_one``, ...),
each a Hypothesis property run under your active Hypothesis profile, failing
with Hypothesis's falsifying example and the invariant's explanation. Backward
invariants are skipped, with the reason, when no backward is set.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import pytest
from hypothesis import given

from softmax_verify._validate import resolve_dtype
from softmax_verify.errors import NotApplicable
from softmax_verify.implementation import Implementation
from softmax_verify.invariants import (
    ALL_IDS,
    REGISTRY,
    Case,
    Invariant,
    get_invariant,
    invariants_for,
)
from softmax_verify.kinds import check_kind

__all__ = ["SoftmaxContract"]


def _run_property(inv: Invariant, impl: Implementation, dtype: np.dtype[Any]) -> str | None:
    """Run ``inv`` as a Hypothesis property; the reason if it does not apply, else None."""
    not_applicable: list[str] = []

    @given(inv.cases(dtype))
    def prop(case: Case) -> None:
        if not_applicable:
            return
        try:
            inv.check(impl, case)
        except NotApplicable as exc:  # decided on the first example: nothing to shrink
            not_applicable.append(str(exc))

    prop()
    return not_applicable[0] if not_applicable else None


def _contract_test(invariant_id: str) -> Callable[[Any], None]:
    def test(self: SoftmaxContract) -> None:
        inv = get_invariant(invariant_id, type(self).kind)
        impl = type(self).implementation()
        if inv.needs_backward and not impl.has_backward:
            pytest.skip("no backward set on the contract class")  # forward-only contract: by design
        for name in type(self).dtypes:
            reason = _run_property(inv, impl, resolve_dtype(name, "dtypes"))
            if reason is not None:
                # Not a hidden failure: the invariant cannot be checked on this implementation
                # (e.g. stage_gradients on a cache without named stages), and a pass would claim
                # a check that never ran. exclude= leaves it out of the contract instead.
                pytest.skip(f"{inv.id} does not apply: {reason}")

    test.__name__ = test.__qualname__ = f"test_{invariant_id}"
    test.__doc__ = next(inv.doc for inv in REGISTRY if inv.id == invariant_id)
    return test


class SoftmaxContract:
    """Base class; set ``forward`` (and ``backward``) on a subclass named ``Test...``."""

    forward: ClassVar[Callable[..., Any] | None] = None
    backward: ClassVar[Callable[..., Any] | None] = None
    dtypes: ClassVar[tuple[str, ...]] = ("float64", "float32")
    #: Seconds one call of the implementation may take before it counts as an error.
    timeout: ClassVar[float | None] = 10.0
    #: What the code computes: "softmax" or "log_softmax" (softmax_verify.kinds).
    kind: ClassVar[str] = "softmax"
    #: Also check rows with masked (-inf) entries.
    masked: ClassVar[bool] = False
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

    @classmethod
    def implementation(cls) -> Implementation:
        if cls.forward is None:
            raise TypeError(f"{cls.__name__}.forward must be set to the softmax forward callable")
        return Implementation(cls.forward, cls.backward, timeout=cls.timeout, name=cls.__name__)


for _id in dict.fromkeys(inv.id for inv in invariants_for("softmax")):
    setattr(SoftmaxContract, f"test_{_id}", _contract_test(_id))
del _id
