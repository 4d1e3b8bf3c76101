"""Softmax code in the shapes people write it, correct and wrong, with the options that
read it and the invariants each wrong one must fail (tests/target/test_conventions.py).

Written the way tutorials, from-scratch frameworks and blog posts write them: layer
classes that return or store their results, elementwise derivatives, Jacobian
functions, code for one 1-D vector, a (D, N) layout and an attention-shaped layer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from softmax_verify import Domain

A = NDArray[Any]

# --- layer classes that store their results (the "from scratch" book style) ---------------


class StoringSoftmax:
    """forward stores self.output and returns None; backward stores self.dinputs."""

    def forward(self, inputs: A, training: bool = True) -> None:
        self.inputs = inputs
        exp_values = np.exp(inputs - np.max(inputs, axis=1, keepdims=True))
        self.output = exp_values / np.sum(exp_values, axis=1, keepdims=True)

    def backward(self, dvalues: A) -> None:
        self.dinputs = np.empty_like(dvalues)
        for index, (single_output, single_dvalues) in enumerate(
            zip(self.output, dvalues, strict=True)
        ):
            single_output = single_output.reshape(-1, 1)
            jacobian_matrix = np.diagflat(single_output) - np.dot(single_output, single_output.T)
            self.dinputs[index] = np.dot(jacobian_matrix, single_dvalues)


class StoringDiagonalSoftmax(StoringSoftmax):
    """The bug: only the Jacobian's diagonal, y (1 - y), times the upstream gradient."""

    def backward(self, dvalues: A) -> None:
        self.dinputs = dvalues * self.output * (1 - self.output)


class StoringOverwritingSoftmax(StoringSoftmax):
    """The bug: the gradient written over the stored output (y is gone after one call)."""

    def backward(self, dvalues: A) -> None:
        dot = np.sum(dvalues * self.output, axis=1, keepdims=True)
        self.output *= dvalues - dot
        self.dinputs = self.output


# --- layer classes that return their results ---------------------------------------------


class ReturningSoftmax:
    """forward(x) -> y, backward(dout) -> dx, with the state kept on the object."""

    def __init__(self, axis: int = -1) -> None:
        self.axis = axis

    def forward(self, x: A) -> A:
        e = np.exp(x - x.max(axis=self.axis, keepdims=True))
        self.y = e / e.sum(axis=self.axis, keepdims=True)
        return np.asarray(self.y)

    def backward(self, dout: A) -> A:
        return np.asarray(self.y * (dout - (dout * self.y).sum(axis=self.axis, keepdims=True)))


class ReturningNaiveSoftmax(ReturningSoftmax):
    """The bug: no max subtracted, so exp overflows for large logits."""

    def forward(self, x: A) -> A:
        e = np.exp(x)
        self.y = e / e.sum(axis=self.axis, keepdims=True)
        return np.asarray(self.y)


class FpropSoftmax:
    """fprop/bprop names, the state in self.out, called as a module-level instance."""

    def fprop(self, x: A) -> A:
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        self.out = e / e.sum(axis=-1, keepdims=True)
        return np.asarray(self.out)

    def bprop(self, grad: A) -> A:
        return np.asarray(self.out * (grad - np.sum(grad * self.out, axis=-1, keepdims=True)))


fprop_instance = FpropSoftmax()


class NeedsArgument:
    """A constructor argument without a default: a fresh instance cannot be built."""

    def __init__(self, dim: int) -> None:
        self.dim = dim

    def forward(self, x: A) -> A:
        return np.asarray(x)


def softmax_needs_axis(x: A, axis: int) -> A:
    """Fits no convention: the forward cannot be called as forward(x)."""
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return np.asarray(e / e.sum(axis=axis, keepdims=True))


def backward_needs_three(dout: A, x: A, y: A) -> A:
    """Fits no backward convention: neither backward(dout, cache) nor grad(x or y)."""
    return np.asarray(y * (dout - (dout * y).sum(axis=-1, keepdims=True)))


class NoForwardMethod:
    """A class with none of the forward method names."""

    def run(self, x: A) -> A:
        return np.asarray(x)


# --- the elementwise-derivative convention -----------------------------------------------


class ElementwiseSoftmax:
    """An activation whose gradient(x) is multiplied into the upstream gradient: dx = dout * g.
    Always wrong for softmax: only the Jacobian's diagonal."""

    def __call__(self, x: A) -> A:
        e_x = np.exp(x - np.max(x, axis=-1, keepdims=True))
        return np.asarray(e_x / np.sum(e_x, axis=-1, keepdims=True))

    def gradient(self, x: A) -> A:
        p = self.__call__(x)
        return np.asarray(p * (1 - p))


class BackwardIsDerivative:
    """A framework's activation: backward(out) returns the derivative at the output, which
    the framework multiplies into the upstream gradient (read with --grad elementwise)."""

    def forward(self, x: A) -> A:
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        return np.asarray(e / e.sum(axis=-1, keepdims=True))

    def backward(self, out: A) -> A:
        return np.asarray(out * (1 - out))


def softmax_rows(x: A) -> A:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return np.asarray(e / e.sum(axis=-1, keepdims=True))


def softmax_derivative(s: A) -> A:
    """The elementwise derivative at the output: s (1 - s)."""
    return np.asarray(s * (1 - s))


# --- a backward whose parameter names say the order (thinc's backprop_softmax) -----------


def backprop_softmax(Y: A, dY: A) -> A:
    """The output first, the upstream second, as thinc's Ops write it."""
    return np.asarray(Y * (dY - (dY * Y).sum(axis=-1, keepdims=True)))


def backprop_softmax_diagonal(Y: A, dY: A) -> A:
    """The same order, the Jacobian's diagonal alone."""
    return np.asarray(Y * (1 - Y) * dY)


# --- arrays of another library: only the __array__ protocol ------------------------------


class Wrapped:
    """An array type numpy reads through ``__array__`` alone, as other libraries' are."""

    def __init__(self, data: A) -> None:
        self._data = data
        self.shape = data.shape

    def __array__(self, dtype: Any = None, copy: Any = None) -> A:
        view: A = self._data.view()
        view.flags.writeable = False  # read-only, as TensorFlow's and jax's are
        return view if dtype is None else np.asarray(view, dtype=dtype)


def wrapped_softmax(x: A) -> Wrapped:
    return Wrapped(softmax_rows(x))


def wrapped_backward(dout: A, y: Wrapped) -> Wrapped:
    s = np.asarray(y)
    return Wrapped(s * (dout - (dout * s).sum(axis=-1, keepdims=True)))


def wrapped_naive_softmax(x: A) -> Wrapped:
    e = np.exp(x)
    return Wrapped(e / e.sum(axis=-1, keepdims=True))


# --- Jacobian functions ------------------------------------------------------------------


def softmax_grad(s: A) -> A:
    """The (D, D) Jacobian of one row at its output s: diag(s) - s s^T (1-D code)."""
    s = s.reshape(-1, 1)
    return np.asarray(np.diagflat(s) - np.dot(s, s.T))


def softmax_jacobian_at_x(x: A) -> A:
    """The (N, D, D) Jacobians of a batch, at the input: diag(y) - y y^T per row."""
    y = softmax_rows(x)
    eye = np.eye(x.shape[-1], dtype=y.dtype)
    return np.asarray(y[:, :, None] * eye - y[:, :, None] * y[:, None, :])


def softmax_jacobian_broadcast_bug(s: A) -> A:
    """The bug: s (I - s) broadcasts s along the wrong axis, giving s_j (delta_ij - s_j)
    instead of s_i (delta_ij - s_j): the transpose of the column form, and not symmetric."""
    return np.asarray(s[:, None, :] * (np.eye(s.shape[-1], dtype=s.dtype) - s[:, None, :]))


# --- code written for one 1-D vector -----------------------------------------------------


def softmax_1d(x: A) -> A:
    """One vector: max and sum over the whole array."""
    e = np.exp(x - np.max(x))
    return np.asarray(e / np.sum(e))


def softmax_1d_backward(dout: A, s: A) -> A:
    return np.asarray(s * (dout - np.dot(dout, s)))


def softmax_1d_naive(x: A) -> A:
    """The bug: no max subtracted."""
    return np.asarray(np.exp(x) / np.sum(np.exp(x)))


# --- a (D, N) layout: one column per example ---------------------------------------------


def softmax_columns(z: A) -> A:
    e = np.exp(z - z.max(axis=0, keepdims=True))
    return np.asarray(e / e.sum(axis=0, keepdims=True))


def softmax_columns_backward(da: A, a: A) -> A:
    return np.asarray(a * (da - (da * a).sum(axis=0, keepdims=True)))


def softmax_columns_sum_bug(z: A) -> A:
    """The bug: the max over columns, but the sum over the whole array."""
    e = np.exp(z - z.max(axis=0, keepdims=True))
    return np.asarray(e / e.sum())


# --- attention scores (B, H, L, L), softmax over the keys --------------------------------


class AttentionSoftmax:
    """Softmax over the last axis of (batch, heads, queries, keys) scores."""

    def forward(self, scores: A) -> A:
        scores = scores - scores.max(axis=-1, keepdims=True)
        self.attn = np.exp(scores) / np.exp(scores).sum(axis=-1, keepdims=True)
        return np.asarray(self.attn)

    def backward(self, grad_attn: A) -> A:
        inner = (grad_attn * self.attn).sum(axis=-1, keepdims=True)
        return np.asarray(self.attn * (grad_attn - inner))


class AttentionWrongAxis(AttentionSoftmax):
    """The bug: normalized over the queries (axis -2) instead of the keys."""

    def forward(self, scores: A) -> A:
        scores = scores - scores.max(axis=-2, keepdims=True)
        self.attn = np.exp(scores) / np.exp(scores).sum(axis=-2, keepdims=True)
        return np.asarray(self.attn)


# --- operations as methods of an object built with no arguments --------------------------


class SoftmaxOps:
    """Softmax and its backprop as methods (thinc's ``NumpyOps().softmax`` style); counts the
    instances built, so a test can see a forward and a backward share one."""

    built = 0

    def __init__(self, axis: int = -1) -> None:
        type(self).built += 1
        self.axis = axis

    def softmax(self, x: A) -> A:
        e = np.exp(x - x.max(axis=self.axis, keepdims=True))
        return np.asarray(e / e.sum(axis=self.axis, keepdims=True))

    def softmax_backward(self, dout: A, y: A) -> A:
        return np.asarray(y * (dout - (dout * y).sum(axis=self.axis, keepdims=True)))

    def softmax_backward_diagonal(self, dout: A, y: A) -> A:
        """The bug: only the Jacobian's diagonal."""
        return np.asarray(dout * y * (1 - y))


class OpsNeedingAnArgument(SoftmaxOps):
    def __init__(self, axis: int) -> None:
        super().__init__(axis)


class MisspeltLayer:
    """A layer whose forward method is misspelt, as happens in real code."""

    def foward(self, x: A) -> A:
        return x

    def backward(self, dout: A) -> A:
        return dout


# --- the table the tests run -------------------------------------------------------------


@dataclass(frozen=True)
class Style:
    """Code in one convention, the options that read it, and the invariants it must fail
    (empty for correct code)."""

    name: str
    forward: object
    backward: Any = None
    options: dict[str, Any] = field(default_factory=dict)
    fails: tuple[str, ...] = ()
    #: The shapes the code supports (``Domain()``: every shape).
    domain: Domain = field(default_factory=Domain)


DIAGONAL = ("ones_upstream_gives_zero", "central_differences", "backward_matches_reference")
#: The shapes code that forms each row's D x D Jacobian supports in reasonable time: at the
#: default's longest rows (8192 columns) that is 512 MB per row in float64 and seconds per
#: call, which a loaded machine pushes past the 10 s time limit. Its author declares the
#: domain, as the README tells a kernel's author to.
JACOBIAN_DOMAIN = Domain(cols=(1, 1024))

STYLES: tuple[Style, ...] = (
    Style("storing_layer", StoringSoftmax, domain=JACOBIAN_DOMAIN),
    Style("storing_layer_diagonal", StoringDiagonalSoftmax, fails=DIAGONAL),
    Style("storing_layer_overwriting_y", StoringOverwritingSoftmax, fails=("input_not_mutated",)),
    Style("returning_layer", ReturningSoftmax),
    Style(
        "returning_layer_naive",
        ReturningNaiveSoftmax,
        fails=("finite_for_finite_input", "matches_reference"),
    ),
    Style("fprop_instance", fprop_instance),
    Style("elementwise_layer", ElementwiseSoftmax, fails=DIAGONAL),
    Style(
        "backward_is_derivative",
        BackwardIsDerivative,
        options={"grad": "elementwise", "grad_at": "y"},
        fails=DIAGONAL,
    ),
    Style(
        "elementwise_function_at_y",
        softmax_rows,
        softmax_derivative,
        {"grad": "elementwise", "grad_at": "y"},
        fails=DIAGONAL,
    ),
    Style(
        "jacobian_rows_at_y",
        softmax_rows,
        softmax_grad,
        {"rowwise": True, "grad_at": "y"},
        domain=JACOBIAN_DOMAIN,
    ),
    Style(
        "jacobian_batch_at_x",
        softmax_rows,
        softmax_jacobian_at_x,
        {"grad": "jacobian"},
        domain=JACOBIAN_DOMAIN,
    ),
    Style(
        "jacobian_broadcast_bug",
        softmax_rows,
        softmax_jacobian_broadcast_bug,
        {"grad_at": "y"},
        fails=("jacobian_symmetry", "backward_matches_reference"),
    ),
    Style("one_row", softmax_1d, softmax_1d_backward, {"rowwise": True}),
    Style(
        "one_row_naive",
        softmax_1d_naive,
        softmax_1d_backward,
        {"rowwise": True},
        fails=("finite_for_finite_input", "matches_reference"),
    ),
    Style(
        "one_row_code_on_a_batch",
        softmax_1d,
        None,
        fails=("rows_sum_to_one", "row_independence"),
    ),
    Style("output_first_backward", softmax_rows, backprop_softmax),
    Style(
        "output_first_backward_diagonal", softmax_rows, backprop_softmax_diagonal, fails=DIAGONAL
    ),
    Style("another_librarys_arrays", wrapped_softmax, wrapped_backward),
    Style("another_librarys_arrays_per_row", wrapped_softmax, wrapped_backward, {"rowwise": True}),
    Style(
        "another_librarys_arrays_naive",
        wrapped_naive_softmax,
        fails=("finite_for_finite_input", "matches_reference"),
    ),
    Style("columns", softmax_columns, softmax_columns_backward, {"axis": 0}),
    Style(
        "columns_sum_bug",
        softmax_columns_sum_bug,
        None,
        {"axis": 0},
        fails=("rows_sum_to_one", "row_independence"),
    ),
    Style("attention", AttentionSoftmax, options={"rank": 4}),
    Style(
        "attention_wrong_axis",
        AttentionWrongAxis,
        options={"rank": 4},
        fails=("rows_sum_to_one", "row_independence"),
    ),
)
