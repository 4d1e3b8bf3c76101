"""mygrad (``--autodiff mygrad``): the backward is ``Tensor.backward``.

mygrad's ``nnet.softmax`` and ``nnet.logsoftmax``, its ufunc objects (``mg.exp``), and a
user's function written with ``mygrad`` or with plain numpy (mygrad's Tensor implements
``__array_ufunc__``). A mygrad op called on a numpy array makes that array read-only
while its graph lives (memory guarding): the forward runs under ``mg.no_autodiff``, so
no graph is built and nothing is locked; the backward recomputes the forward on a
Tensor copy of x, calls ``y.backward(dout)`` (which frees the graph) and returns
``x.grad``.
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
    return None  # mygrad's functions and ufunc objects are known by their module


def _adapt(target: Any, device: str) -> Adapted:
    mg = import_library("mygrad")

    def forward(x: NDArray[Any]) -> tuple[Any, NDArray[Any]]:
        saved = np.array(x, copy=True)  # the backward's x, whatever the code does to its own
        with mg.no_autodiff:
            return target(x), saved

    def backward(dout: NDArray[Any], saved: NDArray[Any]) -> Any:
        t = mg.Tensor(saved)  # a copy: the graph locks only its own array
        y = target(t)
        if not isinstance(y, mg.Tensor):
            raise TypeError(
                f"the target returned {type(y).__name__}; mygrad's backward needs the "
                f"mygrad.Tensor its ops return"
            )
        y.backward(dout)
        return t.grad

    how = f"mygrad function {target_name(target)}; backward by mygrad's Tensor.backward"
    return Adapted(AutodiffForward(forward, how, target_name(target)), backward, how)


LIBRARY = Library("mygrad", ("mygrad",), _kind, _adapt)
