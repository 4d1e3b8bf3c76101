"""log_softmax code with one known mistake each, near misses, and correct code in the styles
it is written in, for the log_softmax diagnosis tests (tests/diagnosis/test_log_diagnosis.py).

Forwards take (N, D) logits and return z (or (z, cache)); backwards take (dout, z).
"""

from __future__ import annotations

import numpy as np
from diagnosis_impls import Impl
from numpy.typing import NDArray

from softmax_verify.bundled.reference import log_softmax, log_softmax_backward, softmax

A = NDArray[np.floating]


def shifted(x: A) -> A:
    s = x - x.max(axis=1, keepdims=True)
    return np.asarray(s - np.log(np.exp(s).sum(axis=1, keepdims=True)))


def vjp(dout: A, z: A) -> A:
    return np.asarray(dout - np.exp(z) * dout.sum(axis=1, keepdims=True))


# --- forward mistakes --------------------------------------------------------------------------


def log_of_softmax(x: A) -> A:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return np.asarray(np.log(e / e.sum(axis=1, keepdims=True)))  # -inf where e underflows


def unshifted(x: A) -> A:
    return np.asarray(x - np.log(np.exp(x).sum(axis=1, keepdims=True)))


def column_sum(x: A) -> A:
    s = x - x.max(axis=1, keepdims=True)
    return np.asarray(s - np.log(np.exp(s).sum(axis=0, keepdims=True)))


def batch_sum(x: A) -> A:
    s = x - x.max(axis=1, keepdims=True)
    return np.asarray(s - np.log(np.exp(s).sum()))


def float32_inside(x: A) -> A:
    return shifted(x.astype(np.float32)).astype(x.dtype)


def upcasting(x: A) -> A:
    return shifted(x.astype(np.float64))


def mutating(x: A) -> A:
    x -= x.max(axis=1, keepdims=True)
    x -= np.log(np.exp(x).sum(axis=1, keepdims=True))
    return x


# --- backward mistakes -------------------------------------------------------------------------


def diagonal_only(dout: A, z: A) -> A:
    return np.asarray(dout * (1 - np.exp(z)))


def identity(dout: A, z: A) -> A:
    return np.array(dout, copy=True)


def sum_sign_flipped(dout: A, z: A) -> A:
    return np.asarray(dout + np.exp(z) * dout.sum(axis=1, keepdims=True))


def forgotten_sum(dout: A, z: A) -> A:
    return np.asarray(dout - np.exp(z))


def softmax_vjp(dout: A, z: A) -> A:
    y = np.exp(z)
    return np.asarray(y * (dout - (dout * y).sum(axis=1, keepdims=True)))


def column_reduction(dout: A, z: A) -> A:
    return np.asarray(dout - np.exp(z) * dout.sum(axis=0, keepdims=True))


def total_reduction(dout: A, z: A) -> A:
    return np.asarray(dout - np.exp(z) * dout.sum())


def not_exponentiated(dout: A, z: A) -> A:
    return np.asarray(dout - z * dout.sum(axis=1, keepdims=True))


def halved(dout: A, z: A) -> A:
    return np.asarray(0.5 * vjp(dout, z))


# --- near misses -------------------------------------------------------------------------------


def identity_near_miss(dout: A, z: A) -> A:
    return (1 + 1e-3) * dout


def column_sum_near_miss(x: A) -> A:
    return column_sum(x) + 1e-3


def not_exponentiated_near_miss(dout: A, z: A) -> A:
    return np.asarray(dout - 1.001 * z * dout.sum(axis=1, keepdims=True))


def halved_plus_upstream(dout: A, z: A) -> A:
    return np.asarray(0.5 * vjp(dout, z) + 1e-3 * dout)


BOTH = ("float64", "float32")

LOG_FORMULA_BUGS: tuple[Impl, ...] = (
    Impl("log_of_softmax", log_of_softmax, None, ("log_of_softmax",)),
    Impl("unshifted", unshifted, None, ("logsumexp_cancellation",)),
    Impl("column_sum", column_sum, None, ("wrong_normalization_axis",)),
    Impl("batch_sum", batch_sum, None, ("wrong_normalization_axis",)),
    Impl("float32_inside", float32_inside, None, ("reduced_precision",), ("float64",)),
    Impl("upcasting", upcasting, None, ("dtype_changed",), ("float32",)),
    Impl("mutating", mutating, None, ("mutates_input",)),
    Impl("diagonal_only", shifted, diagonal_only, ("diagonal_only",)),
    Impl("identity", shifted, identity, ("identity_backward",)),
    Impl("sum_sign_flipped", shifted, sum_sign_flipped, ("sum_sign_flipped",)),
    Impl("forgotten_sum", shifted, forgotten_sum, ("upstream_missing_in_sum",)),
    Impl("softmax_vjp", shifted, softmax_vjp, ("softmax_backward",)),
    Impl("column_reduction", shifted, column_reduction, ("batch_axis_reduction",)),
    Impl("total_reduction", shifted, total_reduction, ("batch_axis_reduction",)),
    Impl("not_exponentiated", shifted, not_exponentiated, ("log_output_not_exponentiated",)),
    Impl("halved", shifted, halved, ("scaled_backward",)),
)

LOG_NO_FORMULA: tuple[Impl, ...] = (
    Impl("identity_near_miss", shifted, identity_near_miss, ()),
    Impl("column_sum_near_miss", column_sum_near_miss, None, ()),
    Impl("not_exponentiated_near_miss", shifted, not_exponentiated_near_miss, ()),
    Impl("halved_plus_upstream", shifted, halved_plus_upstream, ()),
    # Shifted, but the maximum is added back before subtracting: x - (m + log s) rounds
    # m + log s at m's scale, so the result cancels (float32, x = (100, 100): 1.4e-6 off,
    # bound 1e-6). No catalogued formula: the forward's error is the sum's rounding.
    Impl(
        "logsumexp_then_subtract",
        lambda x: np.asarray(
            x
            - (
                x.max(1, keepdims=True)
                + np.log(np.exp(x - x.max(1, keepdims=True)).sum(1, keepdims=True))
            )
        ),
        lambda g, z: g - np.exp(z) * g.sum(1, keepdims=True),
        (),
    ),
)

LOG_CORRECT: tuple[Impl, ...] = (
    Impl(
        "reference",
        lambda x: log_softmax(x, axis=1),
        lambda g, z: log_softmax_backward(g, z, axis=1),
        (),
    ),
    Impl("textbook", shifted, vjp, ()),
    Impl(
        "softmax_then_log_of_moderate",  # right while nothing underflows: the reference's y
        lambda x: np.asarray(shifted(x)),
        lambda g, z: g - softmax(z, axis=1) * g.sum(1, keepdims=True),
        (),
    ),
    Impl(
        "float64_inside",
        lambda x: shifted(x.astype(np.float64)).astype(x.dtype),
        lambda g, z: vjp(g.astype(np.float64), z.astype(np.float64)).astype(g.dtype),
        (),
    ),
)
