"""keras 3: a target of keras's (``keras.ops.softmax``, ``keras.activations.softmax``, a
``keras.layers.Softmax`` class or instance, a ``keras.Layer`` subclass of the user's)
is differentiated by the library of keras's backend.

keras fixes its backend when it is first imported, from ``KERAS_BACKEND`` or else its
``keras.json`` (``$KERAS_HOME``, by default ``~/.keras``), tensorflow when neither says.
The child process inherits the environment of ``softmax-verify check``, so the backend
is the one the user's own code gets; it is not changed here (a function imported before
a change keeps dispatching to the old backend). tensorflow, jax and torch backends are
read through their library's adapter (tf.GradientTape, jax.vjp, torch.autograd.grad);
the numpy backend has no autodiff, so its forward alone is checked, and the reading
says so. keras is not an ``--autodiff`` value of its own: ``--autodiff tensorflow``
(or jax, torch) reads code written with ``keras.ops`` on that backend.
"""

from __future__ import annotations

import sys
from typing import Any

from softmax_verify.core.messages import describe_exception
from softmax_verify.target.autodiff import _jax, _tensorflow, _torch
from softmax_verify.target.autodiff._base import (
    Adapted,
    AutodiffError,
    AutodiffForward,
    Library,
    import_library,
    relabel,
    target_name,
)

__all__ = ["LIBRARY"]

#: The libraries that differentiate each keras backend with autodiff.
BACKENDS: dict[str, Library] = {
    "tensorflow": _tensorflow.LIBRARY,
    "jax": _jax.LIBRARY,
    "torch": _torch.LIBRARY,
}


def _kind(target: object) -> str | None:
    keras = sys.modules.get("keras")
    if keras is None:
        return None
    if isinstance(target, type) and issubclass(target, keras.Layer):
        return "layer class"
    if isinstance(target, keras.Layer):
        return "layer"
    return None


def _callable(target: Any) -> tuple[Any, str]:
    kind = _kind(target)
    if kind != "layer class":
        return target, f"keras {kind or 'function'} {target_name(target)}"
    try:
        return target(), f"keras layer class {target_name(target)} (built with no arguments)"
    except Exception as exc:
        raise AutodiffError(
            f"keras layer class {target_name(target)} cannot be built without arguments "
            f"({describe_exception(exc)}); point the target at an instance instead"
        ) from None


def _adapt(target: Any, device: str) -> Adapted:
    keras = import_library("keras")
    backend = str(keras.backend.backend())
    fn, what = _callable(target)
    what += f" on keras's {backend} backend"
    library = BACKENDS.get(backend)
    if library is None:
        how = (
            f"{what}, which has no autodiff: the forward alone is checked "
            f"(KERAS_BACKEND=tensorflow, jax or torch checks its gradient too)"
        )
        return Adapted(AutodiffForward(fn, how, target_name(target)), None, how)
    adapted = library.adapt(fn, device)
    _, _, backward = adapted.interpretation.partition("; ")
    return relabel(adapted, f"{what}; {backward}")


LIBRARY = Library("keras", ("keras",), _kind, _adapt)
