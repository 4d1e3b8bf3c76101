"""A correct softmax that raises when the process calling it has imported an optional
library: in the child of ``softmax-verify check``, a numpy target pays for none of them."""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
from numpy.typing import NDArray

#: The frameworks and libraries whose code the verifier can read.
OPTIONAL = (
    "tensorflow",
    "keras",
    "jax",
    "torch",
    "mygrad",
    "autograd",
    "thinc",
    "sklearn",
    "scipy",
)


def softmax(x: NDArray[Any]) -> NDArray[Any]:
    loaded = sorted(name for name in OPTIONAL if name in sys.modules)
    if loaded:
        raise RuntimeError(f"the child imported {', '.join(loaded)}")
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return np.asarray(e / e.sum(axis=1, keepdims=True))
