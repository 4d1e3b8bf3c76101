"""Known-bad softmax implementations, each a mistake people really make.

Every entry says which invariants it must fail; tests/invariants/test_invariants.py runs each
and also checks that every invariant is failed by at least one entry.
All follow the conventions the verifier accepts: forward(x) -> y or (y, cache),
backward(dout, cache) -> dx or {"dx": ...}.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from softmax_verify.bundled.reference import softmax, softmax_backward

A = NDArray[Any]


def stable(x: A) -> A:
    return softmax(x, axis=1)


def correct_backward(dout: A, y: A) -> A:
    return softmax_backward(dout, y, axis=1)


# --- the notebook's code, as it was -----------------------------------------------------


def notebook_forward(x: A) -> tuple[A, dict[str, A]]:
    exps = np.exp(x)
    sexps = np.sum(exps, axis=1).reshape(-1, 1)
    divexps = (1 / sexps).reshape(-1, 1)
    return exps * divexps, {"exps": exps, "sexps": sexps, "divexps": divexps}


def notebook_backward(dout: A, cache: dict[str, A]) -> dict[str, A]:
    grad = {}
    grad["dexps_0"] = cache["divexps"] * dout
    grad["ddivexps"] = np.sum(cache["exps"] * dout, axis=1).reshape(-1, 1)
    grad["dsexps"] = -1.0 / (cache["sexps"] ** 2) * grad["ddivexps"]
    # The bug: divides by the row sum and multiplies by exps instead of broadcasting dsexps.
    grad["dexps_1"] = grad["dsexps"] / np.sum(cache["exps"], axis=1).reshape(-1, 1) * cache["exps"]
    grad["dx"] = cache["exps"] * (grad["dexps_0"] + grad["dexps_1"])
    return grad


# --- wrong forwards ------------------------------------------------------------------------


def naive_forward(x: A) -> A:
    e = np.exp(x)  # no max subtracted: overflows for large logits
    return np.asarray(e / e.sum(axis=1, keepdims=True))


def wrong_axis_forward(x: A) -> A:
    e = np.exp(x - x.max(axis=0, keepdims=True))
    return np.asarray(e / e.sum(axis=0, keepdims=True))  # normalizes columns, not rows


def epsilon_forward(x: A) -> A:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return np.asarray(e / (e.sum(axis=1, keepdims=True) + 1e-8))  # "avoid division by zero"


def temperature_forward(x: A) -> A:
    return softmax(x / 2, axis=1)  # a stray temperature: wrong, but self-consistent


def temperature_backward(dout: A, y: A) -> A:
    return softmax_backward(dout, y, axis=1) / 2  # the exact VJP of temperature_forward


def clipped_forward(x: A) -> A:
    e = np.exp(np.clip(x, -50, 50))  # "stability" by clipping logits instead of shifting
    return np.asarray(e / e.sum(axis=1, keepdims=True))


def sliced_sum_forward(x: A) -> A:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return np.asarray(
        e / (e[:, :-1].sum(axis=1, keepdims=True) + e[:, -1:] * 0.5)
    )  # off-by-one slice


def log_softmax_forward(x: A) -> A:
    shifted = x - x.max(axis=1, keepdims=True)
    return np.asarray(
        shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    )  # returns log-probs


def upcasting_forward(x: A) -> A:
    e = np.exp(x.astype(np.float64) - x.max(axis=1, keepdims=True))
    return np.asarray(e / e.sum(axis=1, keepdims=True))  # float64 out for float32 in


def mutating_forward(x: A) -> A:
    """Softmax written over its input: the caller's logits change, and y is that buffer."""
    x -= x.max(axis=1, keepdims=True)
    np.exp(x, out=x)
    x /= x.sum(axis=1, keepdims=True)
    return x


def global_max_forward(x: A) -> A:
    e = np.exp(x - x.max())  # max of the whole batch: rows far below underflow to 0/0
    return np.asarray(e / e.sum(axis=1, keepdims=True))


# --- wrong backwards -----------------------------------------------------------------------


def diagonal_backward(dout: A, y: A) -> A:
    return np.asarray(y * (1 - y) * dout)  # only the Jacobian diagonal


def double_backward(dout: A, y: A) -> A:
    return 2 * softmax_backward(dout, y, axis=1)


def negated_backward(dout: A, y: A) -> A:
    return np.asarray(y * ((dout * y).sum(axis=1, keepdims=True) - dout))  # sign flipped


def clipping_backward(dout: A, y: A) -> A:
    return softmax_backward(np.clip(dout, -1, 1), y, axis=1)  # gradient clipping in the wrong place


def mutating_backward(dout: A, y: A) -> A:
    """The VJP written over its upstream: the caller's dout changes, and dx is that buffer."""
    dout -= (dout * y).sum(axis=1, keepdims=True)
    dout *= y
    return dout


def dropout_forward(x: A) -> A:
    """Dropout left on at inference: a fresh mask on every call (entropy from the OS, so no
    test runner's reseeding makes two calls agree)."""
    keep = np.random.default_rng().random(x.shape) >= 0.1
    return np.where(keep, stable(x) / 0.9, 0.0)


@dataclass(frozen=True)
class Bad:
    """A known-bad implementation and the invariants it must fail, at the dtypes listed."""

    name: str
    forward: Callable[..., Any]
    backward: Callable[..., Any] | None
    fails: tuple[str, ...]
    dtypes: tuple[str, ...] = ("float64",)
    kind: str = "softmax"


BAD: tuple[Bad, ...] = (
    Bad(
        "notebook",
        notebook_forward,
        notebook_backward,
        (
            "finite_for_finite_input",
            "ones_upstream_gives_zero",
            "central_differences",
            "jacobian_symmetry",
            "backward_matches_reference",
            "stage_gradients",
        ),
        ("float64", "float32"),
    ),
    Bad(
        "naive_forward",
        naive_forward,
        correct_backward,
        ("finite_for_finite_input", "rows_sum_to_one", "matches_reference"),
        ("float64", "float32"),
    ),
    Bad("wrong_axis", wrong_axis_forward, None, ("rows_sum_to_one", "row_independence")),
    Bad("epsilon_denominator", epsilon_forward, None, ("rows_sum_to_one", "matches_reference")),
    Bad(
        "temperature",
        temperature_forward,
        temperature_backward,
        ("matches_reference", "backward_matches_reference"),
    ),
    Bad("clipped_logits", clipped_forward, None, ("shift_invariance", "matches_reference")),
    Bad("sliced_sum", sliced_sum_forward, None, ("permutation_equivariance", "rows_sum_to_one")),
    Bad(
        "log_softmax_returned",
        log_softmax_forward,
        None,
        ("outputs_in_unit_interval", "rows_sum_to_one"),
    ),
    Bad("upcasting", upcasting_forward, None, ("dtype_preserved",), ("float32",)),
    Bad("mutating_forward", mutating_forward, None, ("input_not_mutated",)),
    Bad("dropout_left_on", dropout_forward, None, ("deterministic", "rows_sum_to_one")),
    Bad("mutating_backward", stable, mutating_backward, ("input_not_mutated",)),
    Bad("global_max", global_max_forward, None, ("finite_for_finite_input", "row_independence")),
    Bad(
        "diagonal_only",
        stable,
        diagonal_backward,
        (
            "ones_upstream_gives_zero",
            "gradient_rows_sum_to_zero",
            "central_differences",
            "backward_matches_reference",
        ),
    ),
    Bad(
        "factor_two", stable, double_backward, ("central_differences", "backward_matches_reference")
    ),
    Bad("negated", stable, negated_backward, ("jacobian_psd", "central_differences")),
    Bad(
        "clipped_upstream",
        stable,
        clipping_backward,
        ("linearity_in_upstream", "backward_matches_reference"),
    ),
)
