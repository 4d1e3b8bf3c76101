"""Targets written with a library's ops, checked through the library's own autodiff.

``adapt(target, autodiff, device=...)`` turns such a target into the verifier's pair
``forward(x) -> (y, cache)`` and ``backward(dout, cache) -> dx`` on numpy arrays (their
outputs may be the library's arrays: softmax_verify.target.arrays reads them), and says
in one line how it read the target (the report's interpretation line). The backward is
what the library computes for the target, so a hand-written rule (a
``torch.autograd.Function``'s ``backward``, a ``jax.custom_vjp``) is what is checked.

One module per library, each a ``Library`` (``_base``) in ``LIBRARIES``, whose names are
the ``--autodiff`` values (``core.options.AUTODIFF``):

- ``torch``: ``torch.autograd.grad`` (``_torch``), on ``device``;
- ``jax``: ``jax.vjp``, compiled once per column count (``_jax``);
- ``tensorflow``: ``tf.GradientTape`` (``_tensorflow``);
- ``autograd``: HIPS autograd's ``make_vjp`` (``_autograd``);
- ``mygrad``: ``Tensor.backward`` (``_mygrad``);
- and keras 3, read through the library of its backend (``_keras``).

Without ``autodiff`` (``detect``), a target is recognised where its type or module says
whose it is: a library's own function (``tf.nn.softmax``, ``jax.nn.softmax``,
``mygrad.nnet.softmax``, ``keras.ops.softmax``), a wrapper object of the library
(``tf.function``, ``jax.jit``), or a subclass of its classes (``torch.autograd.Function``,
``nn.Module``, ``keras.Layer``); anything else is left to the numpy conventions
(``adapt`` returns None). A user's own function says nothing by its type: ``uses``
finds the libraries its code calls, for the report's hint that ``--autodiff`` would
check its gradient.
"""

from __future__ import annotations

import inspect
from types import CodeType, ModuleType
from typing import Any

from softmax_verify.core.options import AUTODIFF
from softmax_verify.target.autodiff import _autograd, _jax, _keras, _mygrad, _tensorflow, _torch
from softmax_verify.target.autodiff._base import (
    Adapted,
    AutodiffError,
    AutodiffForward,
    Library,
    module_roots,
    target_name,
)
from softmax_verify.target.autodiff._jax import compiled_per_shape, jax_kind
from softmax_verify.target.autodiff._torch import check_device, torch_callable, torch_kind

__all__ = [
    "AUTODIFF",
    "LIBRARIES",
    "Adapted",
    "AutodiffError",
    "AutodiffForward",
    "Library",
    "adapt",
    "check_device",
    "compiled_per_shape",
    "detect",
    "jax_kind",
    "library_of_module",
    "target_name",
    "torch_callable",
    "torch_kind",
    "uses",
]

#: The libraries whose autodiff supplies a backward, by their ``--autodiff`` name.
LIBRARIES: dict[str, Library] = {
    library.name: library
    for library in (
        _torch.LIBRARY,
        _jax.LIBRARY,
        _tensorflow.LIBRARY,
        _autograd.LIBRARY,
        _mygrad.LIBRARY,
    )
}
#: Recognised without the flag, in this order: keras first (on its torch backend a
#: keras layer is an ``nn.Module`` too), then each library.
_RECOGNISED: tuple[Library, ...] = (_keras.LIBRARY, *LIBRARIES.values())


def detect(target: object) -> str | None:
    """The name of the library (or ``"keras"``) whose target this is, by its type or module
    (see the module docstring); None for anything else. Imports nothing."""
    for library in _RECOGNISED:
        if library.kind(target) is not None:
            return library.name
    for root in module_roots(target):
        for library in _RECOGNISED:
            if root in library.modules:
                return library.name
    return None


def library_of_module(root: str) -> str | None:
    """The ``--autodiff`` library whose top-level module is ``root`` (``jaxlib``: jax)."""
    return next((name for name, lib in LIBRARIES.items() if root in lib.modules), None)


def adapt(target: object, autodiff: str | None = None, *, device: str = "cpu") -> Adapted | None:
    """The pair for a library's target, or None for a target of no library's.

    ``autodiff``: one of ``AUTODIFF``, or None to ``detect``. ``device`` other than
    ``"cpu"`` applies to torch only.
    """
    if autodiff is not None and autodiff not in AUTODIFF:
        raise ValueError(f"autodiff must be one of {', '.join(AUTODIFF)} or None; got {autodiff!r}")
    name = autodiff or detect(target)
    if name is None:
        if device != "cpu":
            raise AutodiffError(f"device {device!r} applies to torch targets only (autodiff)")
        return None
    if not callable(target):
        raise AutodiffError(f"an autodiff target must be callable, got {type(target).__name__}")
    library = LIBRARIES.get(name, _keras.LIBRARY)
    if device != "cpu" and not library.devices:
        raise AutodiffError(f"device {device!r} applies to torch targets only, not {name}")
    return library.adapt(target, device)


def _code_names(code: CodeType) -> list[str]:
    """The global names ``code`` and the functions defined in it refer to."""
    names = list(code.co_names)
    for const in code.co_consts:
        if isinstance(const, CodeType):
            names += _code_names(const)
    return names


def _roots_used(func: Any, seen: set[int]) -> list[str]:
    """The top-level modules of what ``func``'s code reads from its globals: modules, and
    functions or objects of other modules; functions of its own module are followed."""
    code, namespace = getattr(func, "__code__", None), getattr(func, "__globals__", None)
    if not isinstance(code, CodeType) or not isinstance(namespace, dict) or id(func) in seen:
        return []
    seen.add(id(func))
    found: list[str] = []
    for name in _code_names(code):
        value = namespace.get(name)
        if isinstance(value, ModuleType):
            found.append(value.__name__.split(".")[0])
        elif inspect.isfunction(value) and value.__module__ == func.__module__:
            found += _roots_used(value, seen)  # the user's helper
        elif value is not None:
            found += module_roots(value)
    return found


def uses(target: object) -> tuple[str, ...]:
    """The ``--autodiff`` libraries a user's function calls (its code's global names, and
    its helpers' in the same module): read from the code, never by calling it."""
    func: Any = getattr(target, "__func__", target)  # a bound method: its function
    names = (library_of_module(root) for root in _roots_used(inspect.unwrap(func), set()))
    return tuple(dict.fromkeys(name for name in names if name is not None))
