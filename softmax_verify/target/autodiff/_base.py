"""What every autodiff library's module shares: the interface it fills, and its helpers.

A library is a ``Library``: its name (``--autodiff NAME``), the top-level modules whose
objects are its own, how it recognises a target of its own (without importing
anything), and how it turns such a target into the verifier's pair
``forward(x) -> (y, cache)`` and ``backward(dout, cache) -> dx`` on numpy arrays. The
pair may return the library's own arrays: they are read as numpy arrays where every
output is read (softmax_verify.target.arrays), once.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from numpy.typing import NDArray

from softmax_verify.target.frameworks import MissingFramework

__all__ = [
    "Adapted",
    "AutodiffError",
    "AutodiffForward",
    "Library",
    "import_library",
    "module_roots",
    "relabel",
    "target_name",
]


class AutodiffError(ValueError):
    """The target cannot be read as asked; the message says what to do, in one line."""


class AutodiffForward:
    """The numpy forward of an adapted target; carries the interpretation line."""

    def __init__(self, call: Callable[[NDArray[Any]], Any], interpretation: str, name: str):
        self._call = call
        self.interpretation = interpretation
        self.__qualname__ = self.__name__ = name

    def __call__(self, x: NDArray[Any]) -> Any:
        return self._call(x)


@dataclass(frozen=True)
class Adapted:
    """A framework target as the verifier's pair, and how it was read. ``backward`` is None
    for a library with no autodiff (keras's numpy backend): its forward alone is checked."""

    forward: AutodiffForward
    backward: Callable[..., Any] | None
    interpretation: str


@dataclass(frozen=True)
class Library:
    """One autodiff library behind the common interface (docs/development.md says how to
    add one).

    - ``name``: the ``--autodiff`` value (``core.options.AUTODIFF`` lists them);
    - ``modules``: the top-level modules whose functions, classes and instances are the
      library's own (a target from one of them is recognised without the flag);
    - ``kind(target)``: what the target is for the library, for its own types that the
      module rule cannot see (a user's ``nn.Module`` subclass lives in the user's
      module), else None; it looks in ``sys.modules`` only, never imports;
    - ``adapt(target, device)``: the pair; raises ``AutodiffError`` for a target it
      cannot read, ``MissingFramework`` when the library is not installed;
    - ``devices``: whether ``device`` other than ``"cpu"`` applies.
    """

    name: str
    modules: tuple[str, ...]
    kind: Callable[[object], str | None]
    adapt: Callable[[Any, str], Adapted]
    devices: bool = False


def import_library(name: str) -> Any:
    """The module ``name``, or ``MissingFramework`` saying which extra installs it."""
    try:
        return importlib.import_module(name)
    except ImportError:
        raise MissingFramework(name) from None


def target_name(target: object) -> str:
    """The target's own name, as the report shows it."""
    return str(getattr(target, "__qualname__", None) or type(target).__qualname__)


def module_roots(target: object) -> tuple[str, ...]:
    """The top-level modules ``target`` comes from: its type's (a ``tf.function``, a
    ``jax.jit`` wrapper, a mygrad ufunc object) and its own ``__module__`` (a function
    or a class), for a ``functools.partial`` those of the function it wraps."""
    if isinstance(target, functools.partial):
        return module_roots(target.func)
    found = []
    for owner in (type(target).__module__, getattr(target, "__module__", None)):
        if isinstance(owner, str) and owner and owner != "builtins":
            root = owner.split(".")[0]
            if root not in found:
                found.append(root)
    return tuple(found)


def relabel(adapted: Adapted, how: str) -> Adapted:
    """``adapted`` with the interpretation ``how`` (keras names its backend's adapter)."""
    forward = AutodiffForward(adapted.forward._call, how, adapted.forward.__name__)
    return Adapted(forward, adapted.backward, how)
