"""Arrays from any library, read as numpy arrays where the code's outputs are first read.

The code under test may return its library's arrays: a TensorFlow ``EagerTensor``, a jax
``Array``, a mygrad ``Tensor``, a torch ``Tensor``, or any array that says how numpy can
read it. ``ArrayLog.numpy`` reads such a value once, where the output is first read (the
conventions' reader, else the implementation's output checks, in the child process of
``softmax-verify check``):

1. with ``numpy.asarray`` when it has ``__array__`` or the array interface (every
   library above);
2. else with ``numpy.from_dlpack`` when it has ``__dlpack__`` (an array-API array: the
   standard requires DLPack, not ``__array__``);
3. else with its ``.numpy()`` method (tinygrad's Tensor has neither protocol);

then copies it into an array of its own, writable and owned: TensorFlow's, jax's and
mygrad's arrays read as read-only views of the library's buffer, and a torch tensor's
as a view that a later call may write into. ``numpy.asarray`` comes first because it
is the one path that works on every supported numpy for all of them: ``from_dlpack``
takes ``copy=`` only from numpy 2.1 (this package supports 1.24), TensorFlow's export
refuses ``copy=True``, and mygrad's Tensor and ``tf.Variable`` have no ``__dlpack__``.
One copy either way.

The numpy functions this reading uses are bound when this module is imported, which in
the child of ``softmax-verify check`` is before the target is (``isolation.child.serve``
imports it): a target that rebinds ``numpy.asarray``, ``numpy.from_dlpack`` or
``numpy.array`` in its process cannot swap what its array is read as (as
``isolation.child.transport`` holds the channel's functions). The builtins used only pick
the path; the values come from the bound functions and the array itself.

The dtype and shape are then checked as a numpy array's are
(``core.implementation.checked_array``); anything else (a list, None, a number) is left
as it is, for those checks to refuse. The log records which library's arrays were read
and how, for the report's ``read as:`` line.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from softmax_verify.core.errors import ImplementationError
from softmax_verify.core.messages import describe_exception

__all__ = ["ArrayLog", "array_name", "is_array"]

_NUMPY_PROTOCOLS = ("__array__", "__array_interface__", "__array_struct__")

# Bound at import, before the target's module is imported (see the module docstring).
_ndarray = np.ndarray
_asarray: Callable[..., NDArray[Any]] = np.asarray
_from_dlpack: Callable[..., NDArray[Any]] = np.from_dlpack
_array: Callable[..., NDArray[Any]] = np.array


def is_array(value: object) -> bool:
    """A numpy array, or an array of another library that numpy can read (see the module
    docstring)."""
    if isinstance(value, _ndarray):
        return True
    if isinstance(value, (type, str, bytes)):
        return False
    kind = type(value)  # the type's attributes: an object's __getattr__ is not called
    protocols = (*_NUMPY_PROTOCOLS, "__dlpack__", "__array_namespace__")
    return any(hasattr(kind, name) for name in protocols) or callable(getattr(kind, "numpy", None))


def array_name(value: object) -> str:
    """``tensorflow EagerTensor``: the top-level module and the name of the array's type."""
    kind = type(value)
    return f"{str(kind.__module__).split('.')[0]} {kind.__qualname__}"


def _read(value: object) -> tuple[NDArray[Any], str]:
    """``value`` as numpy reads it (a view, maybe read-only), and the path taken."""
    kind = type(value)
    if any(hasattr(kind, name) for name in _NUMPY_PROTOCOLS):
        return _asarray(value), "numpy.asarray"
    producer: Any = value  # its type has __dlpack__
    if hasattr(kind, "__dlpack__"):
        return _from_dlpack(producer), "numpy.from_dlpack"
    if callable(getattr(kind, "numpy", None)):
        return _asarray(producer.numpy()), ".numpy()"
    raise TypeError(f"{kind.__qualname__} has neither __array__, __dlpack__ nor .numpy()")


class ArrayLog:
    """Reads other libraries' arrays as numpy arrays, and records whose it read and how."""

    def __init__(self) -> None:
        #: ``array_name`` of each kind of array read, and the path it was read by.
        self.read: dict[str, str] = {}

    def numpy(self, role: str, what: str, value: object) -> object:
        """``value`` as an owned numpy array if it is another library's array; else
        ``value`` itself. An array numpy cannot read is the code's error (``role``)."""
        if isinstance(value, _ndarray) or not is_array(value):
            return value
        name = array_name(value)
        try:
            array, how = _read(value)
            array = _array(array, copy=True)
        except Exception as exc:
            raise ImplementationError(
                role,
                f"returned a {name} for {what} that numpy cannot read: {describe_exception(exc)}",
            ) from None
        self.read.setdefault(name, how)
        return array

    def roots(self) -> tuple[str, ...]:
        """The top-level modules of the arrays read (``tensorflow``, ``jaxlib``)."""
        return tuple(dict.fromkeys(name.split(" ")[0] for name in self.read))

    def describe(self) -> str | None:
        """``outputs tensorflow EagerTensor, read by numpy.asarray and copied``, or None."""
        if not self.read:
            return None
        kinds = ", ".join(f"{name} (by {how})" for name, how in self.read.items())
        return f"outputs {kinds}, read as numpy arrays and copied"
