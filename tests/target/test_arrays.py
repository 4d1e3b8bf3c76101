"""Outputs that are other libraries' arrays: read as numpy arrays once, where the code's
output is first read, checked as numpy arrays are, and named in the report."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import styles
from conftest import cli, require

from softmax_verify import verify
from softmax_verify.core.errors import ImplementationError
from softmax_verify.core.options import Options
from softmax_verify.target.arrays import ArrayLog, is_array

A = np.ndarray[Any, Any]


class OnlyDLPack:
    """An array-API style array: numpy can read it through DLPack alone."""

    def __init__(self, data: A) -> None:
        self._data = data

    def __dlpack__(self, **kwargs: Any) -> Any:
        return self._data.__dlpack__(**kwargs)

    def __dlpack_device__(self) -> Any:
        return self._data.__dlpack_device__()


class OnlyNumpyMethod:
    """tinygrad's Tensor: neither __array__ nor __dlpack__, a .numpy() method."""

    def __init__(self, data: A) -> None:
        self._data = data

    def numpy(self) -> A:
        return self._data


class Unreadable:
    """Like a torch tensor that requires grad: __array__ raises."""

    def __array__(self, dtype: Any = None, copy: Any = None) -> A:
        raise RuntimeError("Can't call numpy() on Tensor that requires grad")


def _source() -> A:
    source = np.arange(6, dtype=np.float32).reshape(2, 3)
    source.flags.writeable = False
    return source


@pytest.mark.parametrize(
    ("make", "how"),
    [
        (styles.Wrapped, "numpy.asarray"),
        (OnlyDLPack, "numpy.from_dlpack"),
        (OnlyNumpyMethod, ".numpy()"),
    ],
)
def test_each_protocol_gives_an_owned_writable_copy(make: Any, how: str) -> None:
    source = _source()
    log = ArrayLog()
    value = make(source)
    assert is_array(value)
    read = log.numpy("forward", "y", value)
    assert isinstance(read, np.ndarray)
    assert read.dtype == np.float32
    assert read.shape == (2, 3)
    assert read.flags.writeable
    assert not np.shares_memory(read, source)
    np.testing.assert_array_equal(read, source)
    name = f"{make.__module__} {make.__qualname__}"
    assert log.read == {name: how}
    assert log.describe() == f"outputs {name} (by {how}), read as numpy arrays and copied"


def test_numpy_arrays_and_non_arrays_are_left_as_they_are() -> None:
    log = ArrayLog()
    array = np.zeros((2, 2))
    assert log.numpy("forward", "y", array) is array
    for value in ([[0.5, 0.5]], None, 1.0, "y", np.float64):
        assert log.numpy("forward", "y", value) is value
    assert log.read == {}
    assert log.describe() is None


def test_an_array_numpy_cannot_read_is_the_codes_error() -> None:
    with pytest.raises(ImplementationError, match="numpy cannot read: RuntimeError") as info:
        ArrayLog().numpy("backward", "dx", Unreadable())
    assert info.value.role == "backward"


def test_a_wrong_shape_or_dtype_is_refused_after_reading() -> None:
    report = verify(
        lambda x: styles.Wrapped(np.concatenate([x, x], axis=1)),
        invariants=["rows_sum_to_one"],
        max_examples=5,
    )
    (result, *_) = report.results
    assert result.status != "passed"
    assert "returned y of shape (" in result.message
    as_int = verify(lambda x: styles.Wrapped(np.ones(x.shape, np.int64)), max_examples=5)
    assert "expected a floating dtype" in as_int.results[0].message


def test_the_report_names_the_arrays_read() -> None:
    report = verify(styles.wrapped_softmax, styles.wrapped_backward, max_examples=5)
    assert report.passed, report.to_text()
    assert report.reading is not None
    assert report.reading.arrays == (
        "outputs styles Wrapped (by numpy.asarray), read as numpy arrays and copied"
    )
    assert "Wrapped (by numpy.asarray)" in report.to_text().splitlines()[1]
    assert not report.reading.notes  # no library with autodiff: no --autodiff hint


def test_a_torch_tensor_without_autodiff_is_a_forward_and_the_hint_says_so() -> None:
    """The hint comes from the code (it calls torch) or, when the code does not say, from
    the arrays it returned."""
    require("torch")
    import torch_targets

    def through_a_helper(x: A) -> Any:
        return torch_targets.numpy_in_tensor_out(x)

    hints = {}
    for target in (torch_targets.numpy_in_tensor_out, through_a_helper):
        report = verify(target, max_examples=10)
        assert report.passed, report.to_text()
        assert not [r for r in report.results if r.status not in ("passed", "skipped")]
        assert report.reading is not None
        assert report.reading.arrays is not None
        assert "torch Tensor (by numpy.asarray)" in report.reading.arrays
        (hints[target],) = [n for n in report.reading.notes if "--autodiff torch" in n]
    assert hints[torch_targets.numpy_in_tensor_out] == (
        "the forward alone is checked (no backward): it calls torch; "
        "--autodiff torch would also check its gradient"
    )
    assert hints[through_a_helper] == (
        "the forward alone is checked (no backward): it returns a torch Tensor; "
        "--autodiff torch would also check its gradient"
    )


def _jax_softmax_of_mine(x: Any) -> Any:
    import jax

    return jax.nn.softmax(x, axis=-1)


def test_a_jax_array_without_autodiff_is_a_forward_and_the_hint_says_so() -> None:
    require("jax")
    # float32 alone: whether float64 stays float64 depends on jax's x64 flag, which other
    # tests of this process may have set
    report = verify(_jax_softmax_of_mine, dtypes=("float32",), max_examples=10)
    assert report.passed, report.to_text()
    assert report.reading is not None
    assert "jaxlib ArrayImpl (by numpy.asarray)" in str(report.reading.arrays)
    assert any("--autodiff jax would also check its gradient" in n for n in report.reading.notes)


def test_the_child_names_the_library_in_read_as(
    capsys: pytest.CaptureFixture[str], in_repo_root: None
) -> None:
    require("torch")
    status, out, _ = cli(
        capsys,
        "check",
        "tests/torch_targets.py:numpy_in_tensor_out",
        "--dtype",
        "float32",
        "--invariant",
        "rows_sum_to_one",
        "--max-examples",
        "5",
    )
    assert status == 0, out
    read_as = next(line for line in out.splitlines() if line.startswith("read as: "))
    arrays = "outputs torch Tensor (by numpy.asarray), read as numpy arrays and copied"
    assert read_as.endswith(f"; {arrays}")
    assert "\nnote: the forward alone is checked (no backward): it calls torch; " in out


def test_the_autodiff_adapters_outputs_are_read_the_same_way() -> None:
    require("torch")
    import torch_targets

    report = verify(
        torch_targets.torch_softmax,
        invariants=["backward_matches_reference"],
        max_examples=5,
        options=Options(autodiff="torch"),
    )
    assert report.passed, report.to_text()
    assert report.reading is not None
    assert "torch Tensor" in str(report.reading.arrays)
    assert not [n for n in report.reading.notes if "--autodiff" in n]
