"""Cross-entropy targets written with a framework's ops, their gradient by its autodiff.

``adapt_loss(target, autodiff, device=..., loss=...)`` turns such a target into a
``LossCode`` (``target.conventions``) on numpy arrays in the code's layout, and says in
one line how it read the target. The gradient is what the framework computes for the
target: ``torch.autograd.grad`` (so a ``torch.autograd.Function``'s hand-written
``backward`` is what gets checked) or ``jax.vjp`` (so a ``jax.custom_vjp`` rule is), with
respect to the logits, for the upstream the run passes:

- a scalar loss (mean, sum): the upstream g itself; under ``reduction="none"`` a scalar
  loss is an error (the target is said to return one loss per row);
- a loss per row (the batch shape): the rows' weights of the declared reduction, g/N each
  (mean), g (sum) or :math:`g_i` (none), so that its gradient is that of the declared
  reduced loss (optax's integer-label loss returns rows).

Accepted: torch (``autodiff="torch"``) a function of ``(logits, labels)`` tensors, an
``nn.Module`` class (built with no arguments, e.g. ``torch.nn.CrossEntropyLoss``) or
instance, a ``torch.autograd.Function`` subclass whose forward takes ``(ctx, logits,
labels)`` (called through ``.apply``); jax (``autodiff="jax"``) a function of
``(logits, labels)``, plain, jitted or ``jax.custom_vjp``, compiled by ``jax.jit`` once
per shape (rows are never padded: padding would change a mean). Index labels reach the
code as int64 tensors, one-hot and probability rows in the logits' dtype; bfloat16
crosses through float32, which holds every bfloat16 value.
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np
from numpy.typing import NDArray

from softmax_verify.core.options import AUTODIFF, LossOptions
from softmax_verify.target.autodiff import (
    AutodiffError,
    check_device,
    detect,
    jax_kind,
    target_name,
    torch_callable,
)
from softmax_verify.target.conventions import LossCode
from softmax_verify.target.frameworks import MissingFramework
from softmax_verify.target.jax_buckets import compiler_options, configure_child

__all__ = ["AutodiffLoss", "adapt_loss", "from_torch", "to_numpy", "to_torch"]

A = NDArray[Any]
#: The libraries whose autodiff a cross_entropy target is read through.
_LOSS_LIBRARIES = ("torch", "jax")


def _import(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError:
        raise MissingFramework(name) from None


def to_torch(torch: Any, a: A, device: Any) -> Any:
    """``a`` as a tensor on ``device``: integers as int64, bfloat16 through float32."""
    if a.dtype.name == "bfloat16":
        return torch.from_numpy(a.astype(np.float32)).to(device=device, dtype=torch.bfloat16)
    return torch.from_numpy(np.array(a)).to(device)


def from_torch(torch: Any, t: Any) -> A:
    """A tensor as a numpy array of its own dtype (bfloat16 through float32, exactly)."""
    t = t.detach().cpu()
    if t.dtype == torch.bfloat16:
        from softmax_verify.core.dtypes import bfloat16

        out: A = t.to(torch.float32).numpy().astype(bfloat16())
        return out
    return np.array(t.numpy())


def to_numpy(value: Any) -> Any:
    """A jax or numpy result as numpy, in its dtype."""
    return np.asarray(value)


def _weights(np_like: Any, out_shape: tuple[int, ...], rows: int, upstream: Any,
             options: LossOptions) -> Any:  # fmt: skip
    """The cotangent of an output of ``out_shape`` (module docstring), as numpy or jax."""
    g = np_like.asarray(upstream)
    if out_shape == ():
        if options.reduction == "none":
            raise ValueError(
                "the target returned a scalar loss, but --reduction none says it returns one "
                "loss per row"
            )
        return g
    if options.reduction == "none":
        return g.reshape(out_shape)
    scale = rows if options.reduction == "mean" else 1
    return np_like.full(out_shape, g / scale)


class AutodiffLoss(LossCode):
    """A framework loss as a ``LossCode``; ``interpretation``: how it was read."""

    takes_upstream = True
    has_backward = True
    interpretation = ""
    #: Whether it is compiled once per shape (jax): its run draws recurring row lengths.
    compiled_per_shape = False


class _TorchLoss(AutodiffLoss):
    def __init__(self, fn: Any, device: Any, options: LossOptions, how: str) -> None:
        self._torch, self._fn, self._device = _import("torch"), fn, device
        self._options, self.interpretation = options, how

    def _inputs(self, x: A, labels: A) -> tuple[Any, Any]:
        torch = self._torch
        tx = to_torch(torch, x, self._device).requires_grad_(True)
        return tx, to_torch(torch, labels, self._device)

    def _out(self, tx: Any, tl: Any) -> Any:
        out = self._fn(tx, tl)
        if not isinstance(out, self._torch.Tensor):
            raise TypeError(f"the target returned {type(out).__name__}, expected a torch.Tensor")
        return out

    def loss(self, x: A, labels: A) -> object:
        return from_torch(self._torch, self._out(*self._inputs(x, labels)))

    def grad(self, x: A, labels: A, upstream: object) -> tuple[object, bool]:
        torch = self._torch
        tx, tl = self._inputs(x, labels)
        out = self._out(tx, tl)
        cotangent = _weights(np, tuple(out.shape), x.shape[0], upstream, self._options)
        up = to_torch(torch, np.asarray(cotangent, dtype=np.float64), self._device).to(out.dtype)
        (dx,) = torch.autograd.grad(out, tx, up)
        return from_torch(torch, dx), False


class _JaxLoss(AutodiffLoss):
    compiled_per_shape = True

    def __init__(self, fn: Any, options: LossOptions, how: str) -> None:
        jax = self._jax = _import("jax")
        jax.config.update("jax_enable_x64", True)  # float64 must really be float64
        configure_child(jax)
        self._fn, self._options, self.interpretation = fn, options, how
        flags = compiler_options()
        self._loss = jax.jit(fn, compiler_options=flags)
        self._grad = jax.jit(self._vjp, compiler_options=flags)

    def _vjp(self, a: Any, labels: Any, g: Any) -> Any:
        jnp = self._jax.numpy
        out, pull = self._jax.vjp(lambda t: self._fn(t, labels), a)
        cotangent = _weights(jnp, tuple(out.shape), a.shape[0], g, self._options)
        return pull(jnp.asarray(cotangent, dtype=out.dtype))[0]

    def loss(self, x: A, labels: A) -> object:
        return to_numpy(self._loss(x, labels))

    def grad(self, x: A, labels: A, upstream: object) -> tuple[object, bool]:
        g = np.asarray(upstream, dtype=x.dtype)
        return to_numpy(self._grad(x, labels, g)), False


def torch_loss(target: Any, device: str, options: LossOptions) -> AutodiffLoss:
    """The ``LossCode`` of a torch loss target (module docstring)."""
    torch = _import("torch")
    dev = check_device(torch, device)
    fn, what = torch_callable(torch, target)
    if isinstance(fn, torch.nn.Module):
        fn = fn.to(dev)
    how = f"{what}; gradient by torch.autograd.grad on {dev}"
    return _TorchLoss(fn, dev, options, how)


def jax_loss(target: Any, options: LossOptions) -> AutodiffLoss:
    """The ``LossCode`` of a jax loss target (module docstring)."""
    kind = jax_kind(target)
    what = f"jax function {target_name(target)}" + (f" with jax.{kind}" if kind else "")
    how = f"{what}; gradient by jax.vjp; compiled by jax.jit once per shape"
    return _JaxLoss(target, options, how)


def adapt_loss(
    target: object,
    autodiff: str | None = None,
    *,
    device: str = "cpu",
    loss: LossOptions | None = None,
) -> AutodiffLoss | None:
    """The ``LossCode`` of a framework loss target, or None for a target of another kind.

    ``autodiff``: ``"torch"``, ``"jax"``, or None to detect (a ``torch.autograd.Function``
    subclass, an ``nn.Module``, a ``jax.custom_vjp`` function). ``device``: torch only.
    """
    if autodiff is not None and autodiff not in AUTODIFF:
        raise ValueError(f"autodiff must be one of {', '.join(AUTODIFF)} or None; got {autodiff!r}")
    framework = autodiff or detect(target)
    if framework is None:
        if device != "cpu":
            raise AutodiffError(f"device {device!r} applies to torch targets only (autodiff)")
        return None
    if not callable(target):
        raise AutodiffError(f"an autodiff target must be callable, got {type(target).__name__}")
    if framework not in _LOSS_LIBRARIES:
        raise AutodiffError(
            f"a cross_entropy target is read through torch or jax autodiff only; "
            f"this one is {framework}'s"
        )
    options = loss or LossOptions()
    if framework == "torch":
        return torch_loss(target, device, options)
    if device != "cpu":
        raise AutodiffError(f"device {device!r} applies to torch targets only, not jax")
    return jax_loss(target, options)
