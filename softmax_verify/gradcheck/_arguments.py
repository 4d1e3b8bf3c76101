"""The gradient checks' arguments: the implementation to call and the point x, validated."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from softmax_verify.core.implementation import Implementation
from softmax_verify.core.validate import CHECKED_DTYPES, as_matrix
from softmax_verify.target.conventions import implementation_from, is_layer

__all__ = ["implementation", "point"]


def implementation(forward: Any, backward: Any) -> Implementation:
    """``forward`` itself when it is an Implementation, else the pair (or layer) read into one."""
    if isinstance(forward, Implementation):
        return forward
    if backward is None and not is_layer(forward):
        raise TypeError("backward must be given (a callable), got None")
    impl, _ = implementation_from(forward, backward, timeout=None)
    return impl


def point(x: object, name: str) -> NDArray[Any]:
    """``x`` as a finite, non-empty (N, D) float array; ValueError/TypeError otherwise."""
    array = as_matrix(x, name, dtypes=CHECKED_DTYPES)
    if not np.isfinite(array).all():
        raise ValueError(f"{name} must be finite for a gradient check")
    return array
