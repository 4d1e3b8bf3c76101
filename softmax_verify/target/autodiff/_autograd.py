"""HIPS autograd (``--autodiff autograd``): the backward is ``autograd.make_vjp``.

autograd has no softmax of its own: users write one with ``autograd.numpy`` (and
``autograd.scipy.special.logsumexp``), and such a function's module is the user's, so
it is read with the flag; autograd's own primitives are recognised by their marker
(``_is_autograd_primitive``) or module. autograd traces plain numpy too (its boxes
implement ``__array_ufunc__``), except functions such as ``np.einsum`` that return an
object array of boxes. The forward is the function on x itself (numpy in, numpy out);
the backward recomputes it under ``make_vjp`` on a copy of x and applies the VJP to
the upstream, so the gradient's dtype is autograd's (it is not cast back).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from softmax_verify.target.autodiff._base import (
    Adapted,
    AutodiffForward,
    Library,
    import_library,
    target_name,
)

__all__ = ["LIBRARY"]


def _kind(target: object) -> str | None:
    if getattr(target, "_is_autograd_primitive", False) is True:
        return "autograd primitive"
    return None


def _adapt(target: Any, device: str) -> Adapted:
    autograd = import_library("autograd")

    def forward(x: NDArray[Any]) -> tuple[Any, NDArray[Any]]:
        saved = np.array(x, copy=True)  # the backward's x, whatever the code does to its own
        return target(x), saved

    def backward(dout: NDArray[Any], saved: NDArray[Any]) -> Any:
        vjp, _ = autograd.make_vjp(target)(np.array(saved, copy=True))
        return vjp(dout)

    kind = _kind(target) or "autograd function"
    how = f"{kind} {target_name(target)}; backward by autograd.make_vjp"
    return Adapted(AutodiffForward(forward, how, target_name(target)), backward, how)


LIBRARY = Library("autograd", ("autograd",), _kind, _adapt)
