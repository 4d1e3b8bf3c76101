"""A pytest contract: subclass ``SoftmaxContract`` in your own test suite.

    from softmax_verify.testing import SoftmaxContract
    import mymodel

    class TestMySoftmax(SoftmaxContract):
        forward = staticmethod(mymodel.softmax_forward)
        backward = staticmethod(mymodel.softmax_backward)   # optional
        dtypes = ("float64", "float32")                     # optional

    ``forward`` may also be a layer class or instance (``forward = MySoftmaxLayer``);
    ``grad``, ``grad_at``, ``rowwise``, ``axis`` and ``rank`` say how to read the code,
    as ``softmax-verify check`` options do (see ``softmax_verify.conventions``).

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
from softmax_verify.conventions import ReadOptions, implementation_from
from softmax_verify.errors import NotApplicable
from softmax_verify.implementation import Implementation
from softmax_verify.invariants import INVARIANTS, Case, Invariant, get_invariant

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


def _contract_test(inv: Invariant) -> Callable[[Any], None]:
    def test(self: SoftmaxContract) -> None:
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

    test.__name__ = test.__qualname__ = f"test_{inv.id}"
    test.__doc__ = inv.doc
    return test


class SoftmaxContract:
    """Base class; set ``forward`` (and ``backward``) on a subclass named ``Test...``."""

    forward: ClassVar[Any] = None
    backward: ClassVar[Callable[..., Any] | None] = None
    dtypes: ClassVar[tuple[str, ...]] = ("float64", "float32")
    #: Seconds one call of the implementation may take before it counts as an error.
    timeout: ClassVar[float | None] = 10.0
    #: How to read the code (``softmax_verify.conventions.ReadOptions``).
    grad: ClassVar[str | None] = None
    grad_at: ClassVar[str | None] = None
    rowwise: ClassVar[bool] = False
    axis: ClassVar[int] = -1
    rank: ClassVar[int] = 2

    def __init_subclass__(cls, exclude: tuple[str, ...] = (), **kwargs: Any) -> None:
        """``class TestX(SoftmaxContract, exclude=("stage_gradients",))`` leaves those out.

        An excluded invariant's test is not collected at all (rather than skipped): for
        an invariant that cannot apply, e.g. stage_gradients on a backward that returns
        dx alone.
        """
        super().__init_subclass__(**kwargs)
        for invariant_id in exclude:
            get_invariant(invariant_id)  # ValueError naming the ids for a typo
            setattr(cls, f"test_{invariant_id}", None)

    @classmethod
    def implementation(cls) -> Implementation:
        if cls.forward is None:
            raise TypeError(f"{cls.__name__}.forward must be set to the softmax forward callable")
        options = ReadOptions(
            grad=cls.grad, grad_at=cls.grad_at, rowwise=cls.rowwise, axis=cls.axis, rank=cls.rank
        )
        impl, _ = implementation_from(
            cls.forward, cls.backward, options, timeout=cls.timeout, name=cls.__name__
        )
        return impl


for _inv in INVARIANTS:
    setattr(SoftmaxContract, f"test_{_inv.id}", _contract_test(_inv))
del _inv
