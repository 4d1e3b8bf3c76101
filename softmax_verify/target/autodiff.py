"""Targets written with a framework's ops, checked through the framework's own autodiff.

``adapt(target, autodiff, device=...)`` turns such a target into the verifier's numpy
``forward(x) -> (y, cache)`` and ``backward(dout, cache) -> dx`` pair, and says in one
line how it read the target (the report's interpretation line). The backward is what
the framework computes for the target: ``torch.autograd.grad`` (so a
``torch.autograd.Function``'s hand-written ``backward`` is what gets checked) or
``jax.vjp`` (so a ``jax.custom_vjp`` rule, or the JVP rule of a ``jax.custom_jvp``
transposed, is what gets checked).

Accepted targets:

- torch (``autodiff="torch"``): a function of a tensor; an ``nn.Module`` instance, or
  class (constructed with no arguments); a ``torch.autograd.Function`` subclass
  (called through ``.apply``). ``device``: ``"cpu"`` (default) or ``"cuda"``/``"cuda:N"``.
- jax (``autodiff="jax"``): a function of an array, jitted or not, plain or with
  ``jax.custom_vjp``/``jax.custom_jvp``; it is compiled with ``jax.jit`` once per
  column count (softmax_verify.target.jax_buckets): rows in padded blocks, columns never
  padded, and its run draws row lengths from a palette (``compiled_per_shape``).

Without ``autodiff``, a ``torch.autograd.Function`` subclass, an ``nn.Module`` and a
``custom_vjp``/``custom_jvp`` function are recognised as such (``detect``); anything
else is left to the numpy conventions (``adapt`` returns None).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from softmax_verify.core.messages import describe_exception
from softmax_verify.core.options import AUTODIFF
from softmax_verify.target.frameworks import MissingFramework
from softmax_verify.target.jax_buckets import BucketedJit

__all__ = [
    "AUTODIFF",
    "Adapted",
    "AutodiffError",
    "AutodiffForward",
    "adapt",
    "check_device",
    "compiled_per_shape",
    "detect",
    "jax_kind",
    "target_name",
    "torch_callable",
    "torch_kind",
]


class AutodiffError(ValueError):
    """The target cannot be read as asked; the message says what to do, in one line."""


@dataclass(frozen=True)
class Adapted:
    """A framework target as the verifier's numpy pair, and how it was read."""

    forward: Callable[..., Any]
    backward: Callable[..., Any]
    interpretation: str


class AutodiffForward:
    """The numpy forward of an adapted target; carries the interpretation line."""

    def __init__(self, call: Callable[[NDArray[Any]], Any], interpretation: str, name: str):
        self._call = call
        self.interpretation = interpretation
        self.__qualname__ = self.__name__ = name

    def __call__(self, x: NDArray[Any]) -> Any:
        return self._call(x)


def compiled_per_shape(forward: object) -> bool:
    """Whether ``forward`` runs jitted, compiled once per shape (``BucketedJit``): the
    built-in jax adapter's forward, or a jax target's. Its run then draws recurring row
    lengths (``RunPlan.for_target``)."""
    call = forward._call if isinstance(forward, AutodiffForward) else forward
    return isinstance(getattr(call, "__self__", None), BucketedJit)


def _import(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError:
        raise MissingFramework(name) from None


def torch_kind(target: object) -> str | None:
    """``"function"`` (an autograd.Function subclass), ``"module class"``, ``"module"``
    (an nn.Module instance), or None."""
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    if isinstance(target, type) and issubclass(target, torch.autograd.Function):
        return "function"
    if isinstance(target, type) and issubclass(target, torch.nn.Module):
        return "module class"
    if isinstance(target, torch.nn.Module):
        return "module"
    return None


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


def detect(target: object) -> str | None:
    """``"torch"`` or ``"jax"`` for a target that can only be one of theirs, else None."""
    if torch_kind(target) is not None:
        return "torch"
    if jax_kind(target) is not None:
        return "jax"
    return None


def target_name(target: object) -> str:
    """The target's qualified name, or its type's."""
    return str(getattr(target, "__qualname__", None) or type(target).__qualname__)


def check_device(torch: Any, device: str) -> Any:
    """``torch.device(device)``; AutodiffError for CUDA without a GPU or a bad name."""
    if not isinstance(device, str):
        raise TypeError(f"device must be a str such as 'cpu' or 'cuda', got {device!r}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise AutodiffError(
            f"device {device!r} asked for, but torch.cuda.is_available() is False here "
            "(no CUDA GPU, or a CPU-only torch build); use device 'cpu'"
        )
    try:
        return torch.device(device)
    except (RuntimeError, ValueError) as exc:
        raise AutodiffError(f"device must be 'cpu' or 'cuda[:N]'; got {device!r} ({exc})") from None


def torch_callable(torch: Any, target: Any) -> tuple[Callable[..., Any], str]:
    """What to call for a torch target (``.apply`` of an autograd.Function, a module built
    with no arguments, the target itself) and how it was read."""
    kind = torch_kind(target)
    if kind == "function":
        return (
            target.apply,
            f"torch.autograd.Function subclass {target_name(target)}, called via .apply",
        )
    if kind == "module class":
        try:
            module = target()
        except Exception as exc:
            raise AutodiffError(
                f"nn.Module class {target_name(target)} cannot be constructed without arguments "
                f"({describe_exception(exc)}); point the target at an instance instead"
            ) from None
        return module, f"nn.Module class {target_name(target)}, constructed with no arguments"
    if kind == "module":
        return target, f"nn.Module instance of {type(target).__qualname__}"
    return target, f"torch function {target_name(target)}"


def _torch(target: Any, device: str) -> Adapted:
    torch = _import("torch")
    dev = check_device(torch, device)
    fn: Any
    fn, what = torch_callable(torch, target)
    is_module = isinstance(fn, torch.nn.Module)
    if is_module:
        fn = fn.to(dev)

    def forward(x: NDArray[Any]) -> tuple[NDArray[Any], tuple[Any, Any]]:
        t = torch.from_numpy(np.array(x)).to(dev).requires_grad_(True)
        y = fn(t)
        if not isinstance(y, torch.Tensor):
            raise TypeError(f"the target returned {type(y).__name__}, expected a torch.Tensor")
        return y.detach().cpu().numpy().copy(), (t, y)

    def backward(dout: NDArray[Any], cache: tuple[Any, Any]) -> NDArray[Any]:
        t, y = cache
        upstream = torch.from_numpy(np.array(dout)).to(dev)
        (grad,) = torch.autograd.grad(y, t, upstream, retain_graph=True)
        out: NDArray[Any] = grad.detach().cpu().numpy().copy()
        return out

    how = f"{what}; backward by torch.autograd.grad on {dev}"
    if is_module:
        how += " (the module's parameters are left as they are)"
    return Adapted(AutodiffForward(forward, how, target_name(target)), backward, how)


def _jax(target: Any) -> Adapted:
    jax = _import("jax")
    jax.config.update("jax_enable_x64", True)  # float64 must really be float64
    kind = jax_kind(target)
    what = f"jax function {target_name(target)}" + (f" with jax.{kind}" if kind else "")
    bucketed = BucketedJit(target)
    how = f"{what}; backward by jax.vjp; compiled by jax.jit once per column count, rows in blocks"
    return Adapted(
        AutodiffForward(bucketed.forward, how, target_name(target)), bucketed.backward, how
    )


def adapt(target: object, autodiff: str | None = None, *, device: str = "cpu") -> Adapted | None:
    """The numpy pair for a framework target, or None for a target of another kind.

    ``autodiff``: ``"torch"``, ``"jax"``, or None to detect (``detect``). A ``device``
    other than ``"cpu"`` applies to torch only.
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
    if framework == "torch":
        return _torch(target, device)
    if device != "cpu":
        raise AutodiffError(f"device {device!r} applies to torch targets only, not jax")
    return _jax(target)
