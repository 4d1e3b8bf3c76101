"""Softmax code with one known mistake each (or two, or a near miss), for the diagnosis tests.

Each is written the way such code is written by hand. ``FORMULA_BUGS`` maps each
catalogue id to implementations that make that mistake, with the dtypes where it
shows; ``REGION_BUGS`` does the same for the failure regions; ``NEAR_MISSES`` and
``TWO_BUGS`` must never get a wrong diagnosis. All follow the conventions the
verifier accepts: forward(x) -> y or (y, cache), backward(dout, cache) -> dx.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from softmax_verify.bundled.reference import softmax, softmax_backward

A = NDArray[Any]
BOTH = ("float64", "float32")


def stable(x: A) -> A:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return np.asarray(e / e.sum(axis=1, keepdims=True))


def vjp(dout: A, y: A) -> A:
    return np.asarray(y * (dout - (dout * y).sum(axis=1, keepdims=True)))


# --- backward mistakes (forward correct, backward(dout, y)) ----------------------------------


def diagonal_only(dout: A, y: A) -> A:
    return np.asarray(dout * y * (1 - y))


def identity_backward(dout: A, y: A) -> A:
    return dout  # softmax + cross-entropy's gradient, where there is no cross-entropy


def doubled(dout: A, y: A) -> A:
    return 2 * vjp(dout, y)


def sign_flipped(dout: A, y: A) -> A:
    return np.asarray(y * ((dout * y).sum(axis=1, keepdims=True) - dout))


def sum_sign_flipped(dout: A, y: A) -> A:
    return np.asarray(y * (dout + (dout * y).sum(axis=1, keepdims=True)))


def unweighted_sum(dout: A, y: A) -> A:
    return np.asarray(y * (dout - dout.sum(axis=1, keepdims=True)))


def upstream_missing_in_sum(dout: A, y: A) -> A:
    return np.asarray(y * (dout - y.sum(axis=1, keepdims=True)))


def sum_term_missing(dout: A, y: A) -> A:
    return np.asarray(y * dout)  # d(e_i / s) taken through e_i alone: the sum's term is lost


def log_softmax_backward(dout: A, y: A) -> A:
    return np.asarray(dout - y * dout.sum(axis=1, keepdims=True))


def column_sum(dout: A, y: A) -> A:
    return np.asarray(y * (dout - (dout * y).sum(axis=0, keepdims=True)))


def batch_sum(dout: A, y: A) -> A:
    return np.asarray(y * (dout - (dout * y).sum()))


def forward_keeping_x(x: A) -> tuple[A, tuple[A, A]]:
    return stable(x), (x, stable(x))


def uses_input(dout: A, cache: tuple[A, A]) -> A:
    x, _y = cache
    return np.asarray(x * (dout - (dout * x).sum(axis=1, keepdims=True)))


def derivative_at_output(dout: A, y: A) -> A:
    s = stable(y)  # "the derivative of softmax at its input": but y is the output already
    return np.asarray(s * (dout - (dout * s).sum(axis=1, keepdims=True)))


# --- forward mistakes -------------------------------------------------------------------------


def no_max_shift(x: A) -> A:
    e = np.exp(x)
    return np.asarray(e / e.sum(axis=1, keepdims=True))


def epsilon_in_denominator(x: A) -> A:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return np.asarray(e / (e.sum(axis=1, keepdims=True) + 1e-4))


def temperature(x: A) -> A:
    return stable(x / 2.0)


def sharpened(x: A) -> A:
    return stable(x / 0.5)


def column_softmax(x: A) -> A:
    e = np.exp(x - x.max(axis=0, keepdims=True))
    return np.asarray(e / e.sum(axis=0, keepdims=True))


def row_max_column_sum(x: A) -> A:
    """Subtracts each row's maximum, then normalises down the batch axis."""
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return np.asarray(e / e.sum(axis=0, keepdims=True))


def matrix_softmax(x: A) -> A:
    e = np.exp(x - x.max())
    return np.asarray(e / e.sum())


def clipped_probabilities(x: A) -> A:
    return np.clip(stable(x), 1e-7, 1 - 1e-7)


def float32_inside(x: A) -> A:
    return stable(x.astype(np.float32)).astype(x.dtype)


def logits_to_float32(x: A) -> A:
    return softmax(x.astype(np.float32).astype(x.dtype), axis=1)


def upcasting(x: A) -> A:
    return stable(x.astype(np.float64))


def downcasting(x: A) -> A:
    return stable(x).astype(np.float32)


def mutating_forward(x: A) -> A:
    x -= x.max(axis=1, keepdims=True)
    np.exp(x, out=x)
    x /= x.sum(axis=1, keepdims=True)
    return x


def mutating_backward(dout: A, y: A) -> A:
    dout -= (dout * y).sum(axis=1, keepdims=True)
    dout *= y
    return dout


def cache_mutating_backward(dout: A, y: A) -> A:
    y *= dout - (dout * y).sum(axis=1, keepdims=True)
    return y


# --- region bugs ------------------------------------------------------------------------------


def square_dispatch(x: A) -> A:
    """Guesses the layout: a square input is taken as (D, N) and normalised over axis 0."""
    axis = 0 if x.shape[0] == x.shape[1] else 1
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return np.asarray(e / e.sum(axis=axis, keepdims=True))


def first_row_sum(dout: A, y: A) -> A:
    """Takes the first row's <dout, y> for the whole batch: right for one row only."""
    return np.asarray(y * (dout - (dout[0] * y[0]).sum()))


def blocked_sum(x: A) -> A:
    """Sums each row in blocks of 8 and forgets the remainder after the last block."""
    e = np.exp(x - x.max(axis=1, keepdims=True))
    full = x.shape[1] - x.shape[1] % 8
    s = np.zeros((x.shape[0], 1), dtype=x.dtype)
    for j in range(0, full, 8):
        s += e[:, j : j + 8].sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(e / s)


def dropped_tail_block(x: A) -> A:
    """A kernel over column blocks of 16 that visits D // 16 of them (at least one): the tail
    of a row past its last full block never enters the maximum or the sum."""
    blocks = max(1, x.shape[1] // 16)
    m = x[:, : blocks * 16].max(axis=1, keepdims=True)
    s = np.zeros((x.shape[0], 1), dtype=x.dtype)
    for b in range(blocks):
        s += np.exp(x[:, b * 16 : (b + 1) * 16] - m).sum(axis=1, keepdims=True)
    with np.errstate(over="ignore", invalid="ignore"):
        return np.asarray(np.exp(x - m) / s)


def mean_centred(dout: A, y: A) -> A:
    """Subtracts the mean of dout: zero, as it should be, for rows of one entry only."""
    return np.asarray(y * (dout - dout.mean(axis=1, keepdims=True)))


def doubled_in_float32(dout: A, y: A) -> A:
    scale = 2.0 if dout.dtype == np.float32 else 1.0
    return np.asarray(scale * vjp(dout, y), dtype=dout.dtype)


# --- near misses and two bugs -----------------------------------------------------------------


def diagonal_near_miss(dout: A, y: A) -> A:
    return (1 + 1e-3) * diagonal_only(dout, y)


def sum_sign_near_miss(dout: A, y: A) -> A:
    return np.asarray(y * (dout + 1.001 * (dout * y).sum(axis=1, keepdims=True)))


def scaled_plus_upstream(dout: A, y: A) -> A:
    return 2 * vjp(dout, y) + 1e-3 * dout


def column_near_miss(x: A) -> A:
    return (1 + 1e-3) * column_softmax(x)


def temperature_near_miss(x: A) -> A:
    return (1 + 1e-3) * temperature(x)


def smoothed(x: A) -> A:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return np.asarray((e + 1e-4) / (e.sum(axis=1, keepdims=True) + 1e-4))


def doubled_diagonal(dout: A, y: A) -> A:
    return 2 * diagonal_only(dout, y)


def tempered_epsilon(x: A) -> A:
    return epsilon_in_denominator(x / 2.0)


@dataclass(frozen=True)
class Impl:
    """An implementation, the diagnosis ids it must get, and the dtypes where it shows."""

    name: str
    forward: Callable[..., Any]
    backward: Callable[..., Any] | None
    ids: tuple[str, ...]
    dtypes: tuple[str, ...] = BOTH


FORMULA_BUGS: tuple[Impl, ...] = (
    Impl("diagonal_only", stable, diagonal_only, ("diagonal_only",)),
    Impl("identity_backward", stable, identity_backward, ("identity_backward",)),
    Impl("doubled", stable, doubled, ("scaled_backward",)),
    Impl("sign_flipped", stable, sign_flipped, ("scaled_backward",)),
    Impl("sum_sign_flipped", stable, sum_sign_flipped, ("sum_sign_flipped",)),
    Impl("unweighted_sum", stable, unweighted_sum, ("unweighted_sum",)),
    Impl("sum_term_missing", stable, sum_term_missing, ("sum_term_missing",)),
    Impl("upstream_missing_in_sum", stable, upstream_missing_in_sum, ("upstream_missing_in_sum",)),
    Impl("log_softmax_backward", stable, log_softmax_backward, ("log_softmax_backward",)),
    Impl("column_sum", stable, column_sum, ("batch_axis_reduction",)),
    Impl("batch_sum", stable, batch_sum, ("batch_axis_reduction",)),
    Impl("uses_input", forward_keeping_x, uses_input, ("uses_input_not_output",)),
    Impl("derivative_at_output", stable, derivative_at_output, ("derivative_at_output",)),
    Impl("no_max_shift", no_max_shift, None, ("no_max_shift",)),
    Impl("epsilon_in_denominator", epsilon_in_denominator, None, ("epsilon_in_denominator",)),
    Impl("temperature", temperature, None, ("temperature",)),
    Impl("sharpened", sharpened, None, ("temperature",)),
    Impl("column_softmax", column_softmax, None, ("wrong_normalization_axis",)),
    Impl("matrix_softmax", matrix_softmax, None, ("wrong_normalization_axis",)),
    Impl("row_max_column_sum", row_max_column_sum, None, ("wrong_normalization_axis",)),
    Impl("clipped_probabilities", clipped_probabilities, None, ("clipped_probabilities",)),
    # At float32 these two are correct code: the mistake only exists at float64.
    Impl("float32_inside", float32_inside, None, ("reduced_precision",), ("float64",)),
    Impl("logits_to_float32", logits_to_float32, None, ("reduced_precision",), ("float64",)),
    Impl("upcasting", upcasting, None, ("dtype_changed",), ("float32",)),
    Impl("downcasting", downcasting, None, ("dtype_changed",), ("float64",)),
    Impl("mutating_forward", mutating_forward, None, ("mutates_input",)),
    Impl("mutating_backward", stable, mutating_backward, ("mutates_input",)),
    Impl("cache_mutating_backward", stable, cache_mutating_backward, ("mutates_input",)),
)

#: Two mistakes, both in the catalogue: both must be named.
BOTH_KNOWN: tuple[Impl, ...] = (
    Impl("no_shift_and_diagonal", no_max_shift, diagonal_only, ("no_max_shift", "diagonal_only")),
    Impl("mutating_and_doubled", mutating_forward, doubled, ("mutates_input", "scaled_backward")),
)

#: Close to a catalogue formula, or two mistakes combined: no formula may be named.
NO_FORMULA: tuple[Impl, ...] = (
    Impl("diagonal_near_miss", stable, diagonal_near_miss, ()),
    Impl("sum_sign_near_miss", stable, sum_sign_near_miss, ()),
    Impl("scaled_plus_upstream", stable, scaled_plus_upstream, ()),
    Impl("column_near_miss", column_near_miss, None, ()),
    Impl("temperature_near_miss", temperature_near_miss, None, ()),
    Impl("smoothed", smoothed, None, ()),
    Impl("doubled_diagonal", stable, doubled_diagonal, ()),
    Impl("tempered_epsilon", tempered_epsilon, None, ()),
)

#: Correct code in the styles it is written in: never any diagnosis.
CORRECT: tuple[Impl, ...] = (
    Impl(
        "reference", lambda x: softmax(x, axis=1), lambda g, y: softmax_backward(g, y, axis=1), ()
    ),
    Impl("textbook", stable, vjp, ()),
    Impl(
        "log_sum_exp",
        lambda x: np.exp(
            x
            - np.log(np.exp(x - x.max(1, keepdims=True)).sum(1, keepdims=True))
            - x.max(1, keepdims=True)
        ),
        lambda g, y: y * g - y * (g * y).sum(1, keepdims=True),
        (),
    ),
    Impl(
        "reciprocal",
        lambda x: (lambda e: e * (1 / e.sum(1, keepdims=True)))(
            np.exp(x - x.max(1, keepdims=True))
        ),
        lambda g, y: (g - np.einsum("ij,ij->i", g, y)[:, None]) * y,
        (),
    ),
    Impl(
        "float64_inside",
        lambda x: stable(x.astype(np.float64)).astype(x.dtype),
        lambda g, y: vjp(g.astype(np.float64), y.astype(np.float64)).astype(g.dtype),
        (),
    ),
)
