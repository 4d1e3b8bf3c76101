"""torch (``--autodiff torch``): the backward is ``torch.autograd.grad``.

A function of a tensor (``torch.nn.functional.softmax`` and the like, or the user's); an
``nn.Module`` instance, or class (constructed with no arguments); a
``torch.autograd.Function`` subclass, called through ``.apply``, so its hand-written
``backward`` is what is checked. ``device``: ``"cpu"`` or ``"cuda"``/``"cuda:N"``. The
graph of each forward call is kept in its cache (``retain_graph``), so the backward
runs on the very call the forward checked.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from softmax_verify.core.messages import describe_exception
from softmax_verify.target.autodiff._base import (
    Adapted,
    AutodiffError,
    AutodiffForward,
    Library,
    import_library,
    target_name,
)

__all__ = ["LIBRARY", "check_device", "torch_callable", "torch_kind"]


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
        how = f"torch.autograd.Function subclass {target_name(target)}, called via .apply"
        return target.apply, how
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


def _adapt(target: Any, device: str) -> Adapted:
    torch = import_library("torch")
    dev = check_device(torch, device)
    fn: Any
    fn, what = torch_callable(torch, target)
    is_module = isinstance(fn, torch.nn.Module)
    if is_module:
        fn = fn.to(dev)

    def forward(x: NDArray[Any]) -> tuple[Any, tuple[Any, Any]]:
        t = torch.from_numpy(np.array(x)).to(dev).requires_grad_(True)
        y = fn(t)
        if not isinstance(y, torch.Tensor):
            raise TypeError(f"the target returned {type(y).__name__}, expected a torch.Tensor")
        return y.detach().cpu(), (t, y)

    def backward(dout: NDArray[Any], cache: tuple[Any, Any]) -> Any:
        t, y = cache
        upstream = torch.from_numpy(np.array(dout)).to(dev)
        (grad,) = torch.autograd.grad(y, t, upstream, retain_graph=True)
        return grad.detach().cpu()

    how = f"{what}; backward by torch.autograd.grad on {dev}"
    if is_module:
        how += " (the module's parameters are left as they are)"
    return Adapted(AutodiffForward(forward, how, target_name(target)), backward, how)


LIBRARY = Library("torch", ("torch",), torch_kind, _adapt, devices=True)
