"""Code in the shapes people write it: each convention read, and its verdicts.

Correct code in every style passes under the active Hypothesis profile at both dtypes
(ci in ``make verify``, thorough in ``make soak``); each wrong one fails the invariants
that name its bug (tests/styles.py). The report states how the target was read.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import numpy as np
import pytest
import styles
from hypothesis import given, settings
from hypothesis import strategies as st

from softmax_verify import verify
from softmax_verify.core.implementation import Implementation
from softmax_verify.core.options import Options
from softmax_verify.gradcheck import directional_check, full_jacobian_check
from softmax_verify.run.profiles import PROFILES
from softmax_verify.run.runner import run_invariant
from softmax_verify.target.conventions import ConventionError, ReadOptions, is_layer, read
from softmax_verify.target.conventions._layout import Layout, batch_shape
from softmax_verify.target.local import LocalImplementation
from softmax_verify.testing import SoftmaxContract

A = np.ndarray[Any, Any]
CORRECT = [s for s in styles.STYLES if not s.fails]
WRONG = [s for s in styles.STYLES if s.fails]


def active_profile() -> str:
    name = settings.get_current_profile_name()
    return name if name in PROFILES else "ci"


@pytest.mark.parametrize("style", CORRECT, ids=lambda s: s.name)
def test_correct_code_in_each_style_passes_at_both_dtypes(style: styles.Style) -> None:
    report = verify(
        style.forward,
        style.backward,
        dtypes=("float64", "float32"),
        profile=active_profile(),
        domain=style.domain,
        options=Options(**style.options),
    )
    assert report.passed, report.to_text()
    ran = {r.invariant for r in report.results if r.status == "passed"}
    assert {"backward_matches_reference", "central_differences"} <= ran
    assert report.reading is not None


@pytest.mark.parametrize("style", WRONG, ids=lambda s: s.name)
def test_wrong_code_in_each_style_fails_on_its_bug(style: styles.Style) -> None:
    report = verify(
        style.forward,
        style.backward,
        invariants=style.fails,
        max_examples=60,
        domain=style.domain,
        options=Options(**style.options),
    )
    statuses = {r.invariant: r.status for r in report.results}
    assert statuses == dict.fromkeys(style.fails, "failed"), report.to_text()


def test_readings_name_the_methods_and_attributes() -> None:
    expected = {
        "storing_layer": "StoringSoftmax: class, fresh instance per forward call; forward "
        ".forward(x) -> .output; backward .backward(dout) -> .dinputs; grad vjp; axis -1",
        "fprop_instance": "FpropSoftmax: instance, deep copy per forward call; forward "
        ".fprop(x) -> y; backward .bprop(dout) -> dx; grad vjp; axis -1",
        "jacobian_batch_at_x": "softmax_rows: functions; forward softmax_rows(x) -> y or "
        "(y, cache); backward softmax_jacobian_at_x(x) -> J, dx = J^T dout per row; "
        "grad jacobian at x; axis -1",
        "one_row": "softmax_1d: functions; forward softmax_1d(x) -> y or (y, cache); backward "
        "softmax_1d_backward(dout, cache) -> dx; grad vjp; rowwise: one call per 1-D row",
    }
    for style in styles.STYLES:
        if style.name in expected:
            _, _, reading = read(style.forward, style.backward, ReadOptions(**style.options))
            assert reading.describe() == expected[style.name]
    _, _, elementwise = read(styles.ElementwiseSoftmax)
    assert ".gradient(x)" in elementwise.describe()
    assert any("not diagonal" in note for note in elementwise.notes)


def test_elementwise_report_says_why_it_cannot_be_the_gradient() -> None:
    report = verify(
        styles.softmax_rows,
        styles.softmax_derivative,
        invariants=["ones_upstream_gives_zero"],
        max_examples=20,
        options=Options(grad="elementwise", grad_at="y"),
    )
    text = report.to_text()
    assert "grad elementwise at y" in text
    assert "note: an elementwise derivative g gives dx = dout * g" in text
    assert not report.passed


# --- mutation, judged fairly -------------------------------------------------------------


def layer_adapter(cls: type) -> Implementation:
    """A hand-written adapter passing the layer object itself as the cache."""

    def forward(x: A) -> tuple[A, Any]:
        layer = cls()
        layer.forward(x)
        return layer.output, layer

    def backward(dout: A, layer: Any) -> A:
        layer.backward(dout)
        return np.asarray(layer.dinputs)

    return LocalImplementation(forward, backward, timeout=None)


def test_a_layer_storing_its_gradient_is_not_mutating_its_cache() -> None:
    """Regression: self.dinputs = ... bound on the layer used as the cache was reported as
    "backward wrote to the cache"; binding a new attribute writes into no array."""
    impl = layer_adapter(styles.StoringSoftmax)
    result = run_invariant("input_not_mutated", impl, "float64", max_examples=50)
    assert result.status == "passed", result.message
    for dtype in ("float64", "float32"):
        report = verify(styles.StoringSoftmax, invariants=["input_not_mutated"], dtypes=(dtype,))
        assert report.passed, report.to_text()


def test_writing_into_the_stored_output_is_still_mutation() -> None:
    impl = layer_adapter(styles.StoringOverwritingSoftmax)
    result = run_invariant("input_not_mutated", impl, "float64", max_examples=50)
    assert result.status == "failed"
    assert "backward wrote to the cache" in result.message


def test_writing_into_x_through_a_layout_view_is_mutation() -> None:
    def forward_cols(z: A) -> A:
        z -= z.max(axis=0, keepdims=True)  # in place: the caller's logits change
        e = np.exp(z)
        return np.asarray(e / e.sum(axis=0, keepdims=True))

    report = verify(
        forward_cols, invariants=["input_not_mutated"], max_examples=30, options=Options(axis=0)
    )
    assert report.failures[0].message == "forward(x) wrote to its input x"


# --- usage errors ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("forward", "backward", "says"),
    [
        (styles.NeedsArgument, None, "constructor argument 'dim' has no default"),
        (
            styles.softmax_needs_axis,
            None,
            "softmax_needs_axis(x, axis) cannot be called as softmax_needs_axis(x)",
        ),
        (styles.softmax_rows, styles.backward_needs_three, "fits no backward convention"),
        (styles.NoForwardMethod, None, "no forward method; tried forward, forward_pass"),
    ],
)
def test_code_fitting_no_convention_is_one_type_and_value_error(
    forward: Any, backward: Any, says: str
) -> None:
    with pytest.raises(ConventionError, match=re.escape(says)) as info:
        verify(forward, backward)
    assert isinstance(info.value, TypeError)
    assert isinstance(info.value, ValueError)
    assert "adapter" in str(info.value) or "default" in str(info.value)


def test_vjp_forced_on_a_one_array_function_says_which_option_fits() -> None:
    with pytest.raises(ConventionError, match="grad elementwise/jacobian"):
        verify(styles.softmax_rows, styles.softmax_grad, options=Options(grad="vjp"))


@pytest.mark.parametrize(
    ("options", "says"),
    [
        ({"grad": "hessian"}, "grad must be one of vjp, elementwise, jacobian"),
        ({"grad_at": "z"}, "grad_at must be 'x', 'y' or None, got 'z'"),
        ({"rank": 5}, "rank must be 2, 3 or 4, got 5"),
        ({"axis": 2}, r"axis must be an int in \[-2, 1\] for rank 2, got 2"),
        ({"rowwise": True, "rank": 3}, "rowwise=True calls code written for one 1-D row"),
        ({"rowwise": 1}, "rowwise must be a bool"),
        ({"grad": "vjp", "grad_at": "y"}, "it does not apply with grad='vjp'"),
    ],
)
def test_read_options_are_validated(options: dict[str, Any], says: str) -> None:
    with pytest.raises((ValueError, TypeError), match=says):
        ReadOptions(**options)


# --- the contract takes the same options -------------------------------------------------


class TestAttentionContract(SoftmaxContract, exclude=("stage_gradients",)):
    forward = styles.AttentionSoftmax
    rank = 4
    dtypes = ("float64",)


class TestRowwiseJacobianContract(SoftmaxContract, exclude=("stage_gradients",)):
    forward = staticmethod(styles.softmax_rows)
    backward = staticmethod(styles.softmax_grad)
    rowwise = True
    grad_at = "y"
    dtypes = ("float32",)


def test_contract_with_a_wrong_layer_fails() -> None:
    class Wrong(SoftmaxContract):
        forward = styles.StoringDiagonalSoftmax

    with pytest.raises(pytest.fail.Exception, match="ones_upstream_gives_zero"):
        getattr(Wrong(), "test_ones_upstream_gives_zero")("float64")  # noqa: B009  # set per invariant


# --- the layout map ----------------------------------------------------------------------


def prime_factor_count(n: int) -> int:
    count, p = 0, 2
    while n > 1:
        while n % p == 0:
            n, count = n // p, count + 1
        p += 1
    return count


@given(st.integers(1, 64), st.integers(1, 3))
def test_batch_shape_factors_n_with_axes_above_one_where_it_can(n: int, axes: int) -> None:
    shape = batch_shape(n, axes)
    assert len(shape) == axes
    assert int(np.prod(shape)) == n
    above_one = sum(1 for b in shape if b > 1)
    assert above_one == min(axes, prime_factor_count(n))


@given(st.integers(1, 12), st.integers(1, 6), st.sampled_from([(2, 0), (3, 1), (4, -1), (4, 1)]))
def test_layout_round_trip_is_exact(n: int, d: int, rank_axis: tuple[int, int]) -> None:
    layout = Layout(*rank_axis)
    x = np.arange(n * d, dtype=np.float64).reshape(n, d)
    code = layout.to_code(x)
    assert code.shape == layout.shape(n, d)
    assert code.shape[layout.axis] == d
    assert np.array_equal(layout.to_canonical(code), x)
    assert np.shares_memory(code, x)  # a write into the code's array is a write into x


def test_attention_layout_puts_factors_next_to_the_softmax_axis() -> None:
    assert batch_shape(6, 3) == (1, 2, 3)
    assert batch_shape(12, 3) == (2, 2, 3)
    assert Layout(4, -1).shape(6, 5) == (1, 2, 3, 5)
    assert Layout(2, 0).shape(7, 5) == (5, 7)


# --- the gradient checks read the same conventions ---------------------------------------


def test_gradient_checks_take_layers_and_their_verdicts_hold() -> None:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((6, 5))
    assert full_jacobian_check(styles.StoringSoftmax, None, x).passed
    assert directional_check(styles.AttentionSoftmax, None, x).passed
    assert not full_jacobian_check(styles.StoringDiagonalSoftmax, None, x).passed
    assert not directional_check(styles.StoringDiagonalSoftmax, None, x).passed


def test_a_callable_object_alone_is_a_function_not_a_layer() -> None:
    jitted_like = functools.partial(styles.softmax_rows)
    assert not is_layer(jitted_like)
    assert is_layer(styles.ElementwiseSoftmax())  # __call__ with a gradient method
    report = verify(jitted_like, invariants=["matches_reference"], max_examples=10)
    assert report.passed
    assert report.reading is not None
    assert report.reading.kind == "functions"


class DerivativeFromState:
    """derivative(self) with no parameter: the elementwise derivative read from the state."""

    def forward(self, x: A) -> None:
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        self.probs = e / e.sum(axis=-1, keepdims=True)

    def derivative(self) -> A:
        return np.asarray(self.probs * (1 - self.probs))


def test_a_method_without_parameters_reads_the_state() -> None:
    report = verify(DerivativeFromState, invariants=["ones_upstream_gives_zero"], max_examples=20)
    assert report.reading is not None
    assert report.reading.how() == (
        "class, fresh instance per forward call; forward .forward(x) -> .probs; backward "
        ".derivative() on the stored state -> g (dx = dout * g) or J (..., D, D) "
        "(dx = J^T dout); grad elementwise or jacobian, by the returned shape; axis -1"
    )
    assert [r.status for r in report.results] == ["failed", "failed"]  # float32, float64


def _y_dy(Y: A, dY: A) -> A:
    return Y


def _dy_y(dY: A, Y: A) -> A:
    return Y


def _probs_grad_output(probs: A, grad_output: A, *, axis: int = -1) -> A:
    return probs


def _dout_cache(dout: A, cache: A) -> A:
    return dout


def _a_b(a: A, b: A) -> A:
    return a


def _z_dz(z: A, dz: A) -> A:
    return z


@pytest.mark.parametrize(
    ("backward", "swapped"),
    [
        (_y_dy, True),  # thinc's backprop_softmax(Y, dY)
        (_probs_grad_output, True),
        (_z_dz, True),
        (_dy_y, False),  # thinc's backprop_softmax_sequences(dY, Y, lengths)
        (_dout_cache, False),
        (_a_b, False),  # the names say nothing: the usual order
        (styles.softmax_columns_backward, False),  # (da, a)
    ],
)
def test_the_backwards_parameter_names_say_the_order(backward: Any, swapped: bool) -> None:
    from softmax_verify.target.conventions._signatures import output_first

    assert output_first(backward) is swapped
    _, _, reading = read(styles.softmax_rows, backward)
    assert reading.backward is not None
    assert reading.backward.startswith(f"{backward.__name__}(cache, dout)" if swapped else
                                       f"{backward.__name__}(dout, cache)")  # fmt: skip
