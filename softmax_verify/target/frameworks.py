"""Built-in adapters for framework softmaxes, in the verifier's conventions.

- ``scipy``: ``scipy.special.softmax(x, axis=1)`` (forward only).
- ``torch``: ``torch.softmax(x, dim=1)`` on the CPU, backward by autograd.
- ``jax``: ``jax.nn.softmax(x, axis=1)``, backward by ``jax.vjp``, with 64-bit
  floats enabled so float64 is really float64.

For the ``cross_entropy`` kind (``loss_peer``): ``torch`` is
``torch.nn.functional.cross_entropy`` with the run's reduction (index labels, or one-hot
and probability rows as soft targets), ``jax`` is optax's
``softmax_cross_entropy_with_integer_labels`` (index labels; ``softmax_cross_entropy``
for rows), which returns one loss per row (the run reduces it). Both are read through
their framework's autodiff (``target.autodiff_loss``).

Each framework is an optional extra (``pip install 'softmax-verify[torch]'``);
asking for a missing one raises ``MissingFramework`` saying what to install.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from softmax_verify.core.extras import install_hint
from softmax_verify.core.options import LossOptions
from softmax_verify.target.jax_buckets import BucketedJit

__all__ = ["FRAMEWORKS", "LOSS_PEERS", "MissingFramework", "adapter", "loss_peer"]

FRAMEWORKS: tuple[str, ...] = ("scipy", "torch", "jax")

Adapter = tuple[Callable[..., Any], Callable[..., Any] | None]


class MissingFramework(ImportError):
    """The framework an adapter needs is not installed."""

    def __init__(self, name: str) -> None:
        super().__init__(f"{name} is not installed; install it with: {install_hint(name)}")


def _import(module: str, extra: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingFramework(extra) from None


def _scipy() -> Adapter:
    special = _import("scipy.special", "scipy")

    def forward(x: NDArray[Any]) -> NDArray[Any]:
        out: NDArray[Any] = special.softmax(x, axis=1)
        return out

    return forward, None


def _torch() -> Adapter:
    torch = _import("torch", "torch")

    def forward(x: NDArray[Any]) -> tuple[NDArray[Any], tuple[Any, Any]]:
        t = torch.from_numpy(np.ascontiguousarray(x)).requires_grad_(True)
        y = torch.softmax(t, dim=1)
        return y.detach().numpy().copy(), (t, y)

    def backward(dout: NDArray[Any], cache: tuple[Any, Any]) -> NDArray[Any]:
        t, y = cache
        (grad,) = torch.autograd.grad(
            y, t, torch.from_numpy(np.ascontiguousarray(dout)), retain_graph=True
        )
        out: NDArray[Any] = grad.numpy().copy()
        return out

    return forward, backward


def _jax() -> Adapter:
    jax = _import("jax", "jax")
    jax.config.update("jax_enable_x64", True)

    def softmax_rows(a: Any) -> Any:
        return jax.nn.softmax(a, axis=1)

    # Compiled once per column count and dtype (softmax_verify.target.jax_buckets): run
    # eagerly, or jitted per drawn shape, most of a run was spent compiling.
    bucketed = BucketedJit(softmax_rows)
    return bucketed.forward, bucketed.backward


_ADAPTERS: dict[str, Callable[[], Adapter]] = {"scipy": _scipy, "torch": _torch, "jax": _jax}


def adapter(name: str) -> Adapter:
    """``(forward, backward)`` for a framework name; backward is None for scipy."""
    if name not in _ADAPTERS:
        raise ValueError(f"framework must be one of {', '.join(FRAMEWORKS)}; got {name!r}")
    return _ADAPTERS[name]()


def _torch_loss(options: LossOptions) -> Callable[..., Any]:
    functional = _import("torch.nn.functional", "torch")
    reduction = options.reduction

    def cross_entropy(logits: Any, labels: Any) -> Any:
        return functional.cross_entropy(logits, labels, reduction=reduction)

    cross_entropy.__qualname__ = f"torch.nn.functional.cross_entropy(reduction={reduction!r})"
    return cross_entropy


def _jax_loss(options: LossOptions) -> Callable[..., Any]:
    _import("jax", "jax")
    optax = _import("optax", "optax")
    rows = (
        optax.softmax_cross_entropy_with_integer_labels
        if options.labels == "index"
        else optax.softmax_cross_entropy
    )

    def cross_entropy(logits: Any, labels: Any) -> Any:
        return rows(logits, labels)  # one loss per row: the run reduces them

    cross_entropy.__qualname__ = f"optax.{rows.__name__}"
    return cross_entropy


#: The built-in cross-entropy peers: each builds the loss function of the run's options, and
#: the framework whose autodiff gives its gradient.
LOSS_PEERS: dict[str, tuple[Callable[[LossOptions], Callable[..., Any]], str]] = {
    "torch": (_torch_loss, "torch"),
    "jax": (_jax_loss, "jax"),
}


def loss_peer(name: str, options: LossOptions) -> tuple[Callable[..., Any], str]:
    """``(loss function, framework)`` of a built-in cross-entropy peer (module docstring)."""
    if name not in LOSS_PEERS:
        raise ValueError(
            f"{name} has no cross-entropy adapter; the built-in cross-entropy peers are "
            f"{', '.join(LOSS_PEERS)}"
        )
    build, framework = LOSS_PEERS[name]
    return build(options), framework
