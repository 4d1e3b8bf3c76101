"""jax (``--autodiff jax``): the backward is ``jax.vjp``.

A function of an array, jitted or not, plain or with ``jax.custom_vjp``/``custom_jvp``
(whose rule is then what is checked); a function of jax's own (``jax.nn.softmax``) is
recognised by its module, a ``jax.jit`` wrapper by its type. It is compiled with
``jax.jit`` once per column count (softmax_verify.target.jax_buckets): rows in padded
blocks, columns never padded, and its run draws row lengths from a palette
(``compiled_per_shape``). 64-bit floats are enabled, so float64 is really float64.
"""

from __future__ import annotations

import sys
from typing import Any

from softmax_verify.target.autodiff._base import (
    Adapted,
    AutodiffForward,
    Library,
    import_library,
    target_name,
)
from softmax_verify.target.jax_buckets import BucketedJit

__all__ = ["LIBRARY", "compiled_per_shape", "jax_kind"]


def jax_kind(target: object) -> str | None:
    """``"custom_vjp"`` or ``"custom_jvp"`` for such a jax function, else None."""
    jax = sys.modules.get("jax")
    if jax is None:
        return None
    if isinstance(target, jax.custom_vjp):
        return "custom_vjp"
    if isinstance(target, jax.custom_jvp):
        return "custom_jvp"
    return None


def compiled_per_shape(forward: object) -> bool:
    """Whether ``forward`` runs jitted, compiled once per shape (``BucketedJit``): the
    built-in jax adapter's forward, or a jax target's. Its run then draws recurring row
    lengths (``RunPlan.for_target``)."""
    call = forward._call if isinstance(forward, AutodiffForward) else forward
    return isinstance(getattr(call, "__self__", None), BucketedJit)


def _adapt(target: Any, device: str) -> Adapted:
    jax = import_library("jax")
    jax.config.update("jax_enable_x64", True)  # float64 must really be float64
    kind = jax_kind(target)
    what = f"jax function {target_name(target)}" + (f" with jax.{kind}" if kind else "")
    bucketed = BucketedJit(target)
    how = f"{what}; backward by jax.vjp; compiled by jax.jit once per column count, rows in blocks"
    forward = AutodiffForward(bucketed.forward, how, target_name(target))
    return Adapted(forward, bucketed.backward, how)


LIBRARY = Library("jax", ("jax", "jaxlib"), jax_kind, _adapt)
