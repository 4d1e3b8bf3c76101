"""The trusted float64 oracle (softmax_verify.core.oracle) and the fast kernels checked against it.

The oracle is checked against mpmath (50 digits) within its float64 bound, on small
inputs of both dtypes (it computes in float64 whatever the input dtype). The bundled
kernels of ``softmax_verify.bundled.reference`` are then checked against the oracle on shapes
that take their blocked, multithreaded and chunked-dot paths, which mpmath is too slow
to reach: within the kernel's bound in its dtype plus the oracle's own float64 bound
(``tolerances.reference_*``, what the invariants use).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from mp_oracle import (
    BY_DTYPE,
    SMALL,
    assert_within,
    errors,
    exact_log_softmax,
    exact_softmax,
    exact_vjp,
    to_float64,
)

import softmax_verify.bundled.reference as reference
import softmax_verify.core.oracle as oracle
from softmax_verify.strategies import logits, upstreams
from softmax_verify.tolerances import (
    backward_error_bound,
    forward_error_bound,
    log_softmax_error_bound,
    reference_backward_bound,
    reference_forward_bound,
    reference_log_softmax_bound,
)

F64 = np.dtype(np.float64)


@BY_DTYPE
@given(data=st.data())
def test_oracle_softmax_and_vjp_within_the_float64_bound(
    dtype: np.dtype[Any], data: st.DataObject
) -> None:
    x = data.draw(logits(dtype, shape=SMALL), label="x")
    dout = data.draw(upstreams((int(x.shape[0]), int(x.shape[1])), dtype), label="dout")
    y = oracle.softmax(x)
    assert y.dtype == F64
    exact_y = exact_softmax(x)
    exact = to_float64(exact_y)
    assert_within(errors(y, exact_y), forward_error_bound(x, exact, F64), "oracle softmax", x)
    dx = oracle.softmax_vjp(dout, y)
    bound = backward_error_bound(x, exact, dout, F64)
    assert_within(errors(dx, exact_vjp(exact_y, dout)), bound, "oracle softmax_vjp", x)


@BY_DTYPE
@given(data=st.data())
def test_oracle_log_softmax_within_the_float64_bound(
    dtype: np.dtype[Any], data: st.DataObject
) -> None:
    x = data.draw(logits(dtype, shape=SMALL), label="x")
    z = oracle.log_softmax(x)
    exact_z = exact_log_softmax(x)
    bound = log_softmax_error_bound(x, to_float64(exact_z), F64)
    assert_within(errors(z, exact_z), bound, "oracle log_softmax", x)


def test_oracle_follows_ieee_on_non_finite_rows() -> None:
    x = np.array(
        [
            [0.0, np.nan, 1.0],  # NaN: a NaN row
            [np.inf, 0.0, 1.0],  # +inf: inf - inf, a NaN row
            [-np.inf, -np.inf, -np.inf],  # no finite entry: 0 / 0
            [-np.inf, 0.0, 0.0],  # masked entry beside finite ones: exactly 0
        ]
    )
    y = oracle.softmax(x)
    assert np.isnan(y[:3]).all()
    assert y[3].tolist() == [0.0, 0.5, 0.5]
    z = oracle.log_softmax(x)
    assert np.isnan(z[:3]).all()
    assert z[3, 0] == -np.inf
    np.testing.assert_array_equal(np.isnan(y), np.isnan(reference.softmax(x)))


# Shapes that take each path of the kernels: short rows in many row blocks (several
# threads), one row longer than a BLAS dot chunk (4096, with a remainder), a row block
# boundary inside the rows; and the strided general path (axis 0, below).
KERNEL_SHAPES = [(20000, 64), (3, 10001), (1100, 513)]


@BY_DTYPE
@pytest.mark.parametrize("shape", KERNEL_SHAPES, ids=str)
def test_reference_kernels_agree_with_the_oracle(
    dtype: np.dtype[Any], shape: tuple[int, int]
) -> None:
    rng = np.random.default_rng(sum(shape))
    x = (rng.standard_normal(shape) * 8).astype(dtype)
    x[0, :] += 800 if dtype == F64 else 80  # a row that needs the shift
    dout = rng.standard_normal(shape).astype(dtype)
    y_exact = oracle.softmax(x)
    y = reference.softmax(x)
    tol = reference_forward_bound(x, y_exact, dtype)
    assert np.all(np.abs(y - y_exact) <= tol)
    dx_tol = reference_backward_bound(x, y_exact, dout, dtype)
    assert np.all(
        np.abs(reference.softmax_backward(dout, y) - oracle.softmax_vjp(dout, y_exact)) <= dx_tol
    )
    z_exact = oracle.log_softmax(x)
    z_tol = reference_log_softmax_bound(x, z_exact, dtype)
    assert np.all(np.abs(reference.log_softmax(x) - z_exact) <= z_tol)
    # The general path: reducing over a strided axis.
    y_t = reference.softmax(x.T[:, :7], axis=0)  # columns of the transpose: strided
    assert np.all(np.abs(y_t.T - y_exact[:7]) <= tol[:7])
