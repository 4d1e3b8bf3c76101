"""Input validation, non-finite semantics and purity of the public reference functions.

* Bad input (wrong type, dtype, rank, shape or axis) raises ``TypeError`` or
  ``ValueError`` whose message starts with the offending parameter's name, for
  every public function of ``softmax_verify.bundled.reference`` and
  ``softmax_verify.bundled.staged``.
* Non-finite input follows the IEEE semantics of the ``reference`` module docstring,
  row by row, without a warning (pytest turns warnings into errors).
* The functions are pure: inputs are never written to, outputs have the input's
  dtype and own their memory, any rank works along any axis, and an empty
  non-reduction axis gives an empty result.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numpy.typing import NDArray

from softmax_verify.bundled.reference import (
    log_softmax,
    log_softmax_backward,
    softmax,
    softmax_backward,
    softmax_jvp,
)
from softmax_verify.bundled.staged import StagedCache, staged_backward, staged_forward
from softmax_verify.strategies import DTYPES, logits, shapes, upstreams
from softmax_verify.tolerances import forward_relative_bound, gamma, row_sum_bound

FloatArray = NDArray[np.floating[Any]]
BoolArray = NDArray[np.bool_]

BY_DTYPE = pytest.mark.parametrize("dtype", DTYPES, ids=str)

X = np.array([[0.5, -1.0, 2.0], [0.0, 0.0, 1.0]])
Y = softmax(X)
Z = log_softmax(X)
G = np.array([[1.0, -2.0, 0.5], [0.25, 3.0, -1.0]])
_, CACHE = staged_forward(X)


def _loose(value: object) -> Any:
    """``value`` typed as Any: these tests pass arguments the signatures do not allow."""
    return value


def _named(name: str) -> str:
    """A ``match`` pattern: the message starts with the parameter's name."""
    return rf"^{re.escape(name)}\b"


# --- bad values of each array parameter -------------------------------------------------------

# (id, parameter name as it must appear in the message, call with the bad value)
ARRAY_PARAMETERS: list[tuple[str, str, Callable[[Any], object]]] = [
    ("softmax.x", "x", lambda v: softmax(v)),
    ("log_softmax.x", "x", lambda v: log_softmax(v)),
    ("softmax_backward.dout", "dout", lambda v: softmax_backward(v, Y)),
    ("softmax_backward.y", "y", lambda v: softmax_backward(G, v)),
    ("softmax_jvp.tangent", "tangent", lambda v: softmax_jvp(v, Y)),
    ("softmax_jvp.y", "y", lambda v: softmax_jvp(G, v)),
    ("log_softmax_backward.dout", "dout", lambda v: log_softmax_backward(v, Z)),
    ("log_softmax_backward.y", "y", lambda v: log_softmax_backward(G, v)),
    ("staged_forward.x", "x", lambda v: staged_forward(v)),
    ("staged_backward.dout", "dout", lambda v: staged_backward(v, CACHE)),
    (
        "staged_backward.cache.exps",
        "cache.exps",
        lambda v: staged_backward(G, CACHE._replace(exps=v)),
    ),
    (
        "staged_backward.cache.sexps",
        "cache.sexps",
        lambda v: staged_backward(G, CACHE._replace(sexps=v)),
    ),
    (
        "staged_backward.cache.divexps",
        "cache.divexps",
        lambda v: staged_backward(G, CACHE._replace(divexps=v)),
    ),
]

# (id, bad value, expected exception)
BAD_VALUES: list[tuple[str, object, type[Exception]]] = [
    ("str", "abc", TypeError),
    ("str-array", np.array([["a", "b", "c"], ["d", "e", "f"]]), TypeError),
    ("object-array", np.array([[1.0, None, 2.0], [0.0, 1.0, 2.0]], dtype=object), TypeError),
    ("None", None, TypeError),
    ("dict", {"x": 1.0}, TypeError),
    ("set", {1.0, 2.0}, TypeError),
    ("bytes", b"abc", TypeError),
    ("python-float", 1.0, TypeError),
    ("numpy-scalar", np.float64(1.0), TypeError),
    ("int64", np.arange(6).reshape(2, 3), TypeError),
    ("uint8", np.ones((2, 3), dtype=np.uint8), TypeError),
    ("bool", np.ones((2, 3), dtype=bool), TypeError),
    ("complex", np.ones((2, 3), dtype=np.complex128), TypeError),
    ("list-of-ints", [[1, 2, 3], [4, 5, 6]], TypeError),
    ("list-of-bools", [[True, False, True], [False, True, False]], TypeError),
    ("list-of-str", [["a", "b", "c"], ["d", "e", "f"]], TypeError),
    ("ragged-list", [[1.0, 2.0, 3.0], [1.0]], TypeError),
    ("huge-int-list", [[2**100, 1, 2], [3, 4, 5]], TypeError),
    ("0-d", np.array(1.0), ValueError),
]


def test_the_staged_graph_rejects_half_precision_naming_the_parameter() -> None:
    """The staged graph computes in float32 or float64 only; the reference kernels take half
    precision (computed in float32, rounded once: tests/invariants/test_half_kernels.py)."""
    half = np.ones((2, 3), dtype=np.float16)
    for name, call in (
        ("x", lambda v: staged_forward(v)),
        ("dout", lambda v: staged_backward(v, CACHE)),
        ("cache.exps", lambda v: staged_backward(G, CACHE._replace(exps=v))),
    ):
        with pytest.raises(TypeError, match=_named(name) + ".*float32 or float64"):
            call(half)


@pytest.mark.parametrize(
    ("name", "call"),
    [(n, c) for _, n, c in ARRAY_PARAMETERS],
    ids=[i for i, _, _ in ARRAY_PARAMETERS],
)
@pytest.mark.parametrize(
    ("value", "error"), [(v, e) for _, v, e in BAD_VALUES], ids=[i for i, _, _ in BAD_VALUES]
)
def test_bad_array_argument_is_rejected_naming_the_parameter(
    name: str, call: Callable[[Any], object], value: object, error: type[Exception]
) -> None:
    with pytest.raises(error, match=_named(name)):
        call(value)


@pytest.mark.parametrize(
    ("name", "call"),
    [
        (
            "cache",
            lambda: staged_backward(G, _loose(tuple(CACHE))),
        ),  # a plain tuple, not the NamedTuple
        ("cache", lambda: staged_backward(G, _loose(None))),
        ("cache", lambda: staged_backward(G, _loose({"exps": CACHE.exps}))),
        ("cache", lambda: staged_backward(G, _loose(CACHE.exps))),
    ],
    ids=["tuple", "None", "dict", "array"],
)
def test_staged_backward_rejects_a_cache_of_the_wrong_type(
    name: str, call: Callable[[], object]
) -> None:
    with pytest.raises(TypeError, match=_named(name)):
        call()


def test_lists_and_tuples_of_floats_are_accepted_as_float64() -> None:
    as_list = softmax(_loose(X.tolist()))
    assert as_list.dtype == np.float64
    np.testing.assert_array_equal(as_list, softmax(X))
    np.testing.assert_array_equal(softmax(_loose(tuple(X[0]))), softmax(X[0]))
    from_lists = softmax_backward(_loose(G.tolist()), _loose(Y.tolist()))
    np.testing.assert_array_equal(from_lists, softmax_backward(G, Y))


def test_staged_backward_uses_the_validated_cache_stages() -> None:
    # Every stage goes through the same validation as the arrays, so lists of floats
    # work for the cache too (they used to reach ``sexps**2`` as a list: a raw TypeError).
    as_lists = StagedCache(*(_loose(a.tolist()) for a in CACHE))
    for got, want in zip(staged_backward(G, as_lists), staged_backward(G, CACHE), strict=True):
        np.testing.assert_array_equal(got, want)


# --- empty reduction axis, rank ---------------------------------------------------------------

EMPTY = np.empty((2, 0))

EMPTY_REDUCTION: list[tuple[str, str, Callable[[], object]]] = [
    ("softmax", "x", lambda: softmax(EMPTY)),
    ("softmax-axis0", "x", lambda: softmax(np.empty((0, 5)), axis=0)),
    ("log_softmax", "x", lambda: log_softmax(EMPTY)),
    ("softmax_backward", "dout", lambda: softmax_backward(EMPTY, EMPTY)),
    ("softmax_jvp", "tangent", lambda: softmax_jvp(EMPTY, EMPTY)),
    ("log_softmax_backward", "dout", lambda: log_softmax_backward(EMPTY, EMPTY)),
    ("staged_forward", "x", lambda: staged_forward(EMPTY)),
    ("staged_forward-no-rows", "x", lambda: staged_forward(np.empty((0, 3)))),
    ("staged_backward", "dout", lambda: staged_backward(EMPTY, CACHE)),
    ("staged_forward-1d", "x", lambda: staged_forward(X[0])),
    ("staged_forward-3d", "x", lambda: staged_forward(X[None])),
    ("staged_backward-3d", "dout", lambda: staged_backward(G[None], CACHE)),
    ("reference-empty-list", "x", lambda: softmax(_loose([]))),
]


@pytest.mark.parametrize(
    ("name", "call"),
    [(n, c) for _, n, c in EMPTY_REDUCTION],
    ids=[i for i, _, _ in EMPTY_REDUCTION],
)
def test_empty_reduction_axis_or_wrong_rank_is_a_value_error(
    name: str, call: Callable[[], object]
) -> None:
    with pytest.raises(ValueError, match=_named(name)):
        call()


# --- axis ---------------------------------------------------------------------------------------

AXIS_CALLS: list[tuple[str, Callable[[Any], object]]] = [
    ("softmax", lambda a: softmax(X, axis=a)),
    ("log_softmax", lambda a: log_softmax(X, axis=a)),
    ("softmax_backward", lambda a: softmax_backward(G, Y, axis=a)),
    ("softmax_jvp", lambda a: softmax_jvp(G, Y, axis=a)),
    ("log_softmax_backward", lambda a: log_softmax_backward(G, Z, axis=a)),
]
BY_AXIS_CALL = pytest.mark.parametrize(
    "call", [c for _, c in AXIS_CALLS], ids=[i for i, _ in AXIS_CALLS]
)


@BY_AXIS_CALL
@pytest.mark.parametrize("axis", [2, -3, 100, np.int64(2)], ids=repr)
def test_axis_out_of_range_is_a_value_error(call: Callable[[object], object], axis: object) -> None:
    with pytest.raises(ValueError, match=_named("axis")):
        call(axis)


@BY_AXIS_CALL
@pytest.mark.parametrize(
    "axis", [1.0, np.float64(-1.0), True, np.bool_(False), "1", None, [1], (1,)], ids=repr
)
def test_axis_of_wrong_type_is_a_type_error(call: Callable[[object], object], axis: object) -> None:
    with pytest.raises(TypeError, match=_named("axis")):
        call(axis)


@BY_AXIS_CALL
@pytest.mark.parametrize("axis", [np.int32(-1), np.int64(1), np.uint8(1)], ids=repr)
def test_numpy_integer_axis_is_accepted(call: Callable[[object], object], axis: object) -> None:
    np.testing.assert_array_equal(call(axis), call(-1))


# --- shape and dtype mismatches between arguments ----------------------------------------------

G32 = G.astype(np.float32)
Y32 = Y.astype(np.float32)
CACHE32 = StagedCache(*(a.astype(np.float32) for a in CACHE))

# (id, expected exception, pattern, call)
MISMATCHES: list[tuple[str, type[Exception], str, Callable[[], object]]] = [
    # Shapes that numpy would broadcast silently must be rejected too.
    ("vjp-broadcastable", ValueError, r"^dout\b.*\by\b", lambda: softmax_backward(G[:1], Y)),
    ("vjp-transposed", ValueError, r"^dout\b.*\by\b", lambda: softmax_backward(G.T, Y)),
    ("vjp-column", ValueError, r"^dout\b.*\by\b", lambda: softmax_backward(G, Y[:, :1])),
    ("jvp-shape", ValueError, r"^tangent\b.*\by\b", lambda: softmax_jvp(G[:, :2], Y)),
    ("lsm-shape", ValueError, r"^dout\b.*\by\b", lambda: log_softmax_backward(G[:1], Z)),
    ("vjp-dtype", TypeError, r"^dout\b.*\by\b", lambda: softmax_backward(G32, Y)),
    ("vjp-dtype-y", TypeError, r"^dout\b.*\by\b", lambda: softmax_backward(G, Y32)),
    ("jvp-dtype", TypeError, r"^tangent\b.*\by\b", lambda: softmax_jvp(G32, Y)),
    ("lsm-dtype", TypeError, r"^dout\b.*\by\b", lambda: log_softmax_backward(G, Z.astype("f4"))),
    ("staged-shape", ValueError, r"^dout\b.*cache", lambda: staged_backward(G[:, :2], CACHE)),
    ("staged-rows", ValueError, r"^dout\b.*cache", lambda: staged_backward(G[:1], CACHE)),
    ("staged-dtype", TypeError, r"^dout\b.*cache", lambda: staged_backward(G32, CACHE)),
    (
        "staged-sexps-shape",
        ValueError,
        _named("cache.sexps"),
        lambda: staged_backward(G, CACHE._replace(sexps=np.ones((3, 1)))),
    ),
    (
        "staged-divexps-shape",
        ValueError,
        _named("cache.divexps"),
        lambda: staged_backward(G, CACHE._replace(divexps=CACHE.divexps.ravel())),
    ),
    (
        "staged-sexps-dtype",
        TypeError,
        _named("cache.sexps"),
        lambda: staged_backward(G, CACHE._replace(sexps=CACHE32.sexps)),
    ),
    (
        "staged-divexps-dtype",
        TypeError,
        _named("cache.divexps"),
        lambda: staged_backward(G32, CACHE32._replace(divexps=CACHE.divexps)),
    ),
]


@pytest.mark.parametrize(
    ("error", "pattern", "call"),
    [(e, p, c) for _, e, p, c in MISMATCHES],
    ids=[i for i, _, _, _ in MISMATCHES],
)
def test_mismatched_arguments_are_rejected(
    error: type[Exception], pattern: str, call: Callable[[], object]
) -> None:
    with pytest.raises(error, match=pattern):
        call()


def test_float32_arguments_stay_float32() -> None:
    assert softmax_backward(G32, Y32).dtype == np.float32
    assert staged_backward(G32, CACHE32).dx.dtype == np.float32


# --- non-finite input: IEEE semantics, row by row, without warnings --------------------------


def _agree(a: FloatArray, b: FloatArray, x: FloatArray, dtype: np.dtype[Any]) -> BoolArray:
    """Whether ``a`` and ``b`` may both be correct softmax outputs for logits ``x``.

    Each of them satisfies |y_hat - y| <= eta y + lambda (tolerances.forward_error_bound),
    so y <= (y_hat + lambda) / (1 - eta) for either, and |a - b| <= 2 (eta y + lambda).
    """
    eta = forward_relative_bound(x, dtype)
    lam = float(np.finfo(dtype).smallest_normal)
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    y_up = (np.maximum(np.abs(a64), np.abs(b64)) + lam) / (1 - eta)
    ok: BoolArray = np.abs(a64 - b64) <= 2 * (eta * y_up + lam)
    return ok


def _log_agree(a: FloatArray, b: FloatArray, x: FloatArray, dtype: np.dtype[Any]) -> BoolArray:
    """Whether ``a`` and ``b`` may both be correct log-softmax outputs for logits ``x``.

    tests/bundled/test_accuracy.py derives |z_hat_i - z_i| <= gamma_{D+10+ln D} (1 + t_i + l) with
    l <= ln D, so two correct results differ by at most twice that. Equal values (also
    -inf where x_i - m overflows) agree.
    """
    x64 = x.astype(np.float64)
    d = x.shape[-1]
    with np.errstate(over="ignore", invalid="ignore"):
        t = x64.max(axis=-1, keepdims=True) - x64
        diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
    ok: BoolArray = (a == b) | (
        diff <= 2 * gamma(d + 10 + math.log(d), dtype) * (1 + t + math.log(d))
    )
    return ok


def _same_rows(a: FloatArray, b: FloatArray, rows: BoolArray) -> bool:
    return bool(np.array_equal(a[rows], b[rows], equal_nan=True))


NONFINITE_KINDS = ("nan", "+inf", "all -inf", "+inf and -inf", "masked")


@st.composite
def _corrupted(
    draw: st.DrawFn, dtype: np.dtype[Any]
) -> tuple[FloatArray, FloatArray, int, str, BoolArray]:
    """Finite logits, a copy with one row made non-finite, the row, its kind and the mask."""
    x = draw(logits(dtype, shape=shapes(max_rows=6, max_cols=12)))
    n, d = x.shape
    row = draw(st.integers(0, n - 1))
    kind = draw(st.sampled_from(NONFINITE_KINDS))
    picked = np.array(draw(st.lists(st.booleans(), min_size=d, max_size=d)))
    bad = x.copy()
    first = draw(st.integers(0, d - 1))
    if kind == "nan":
        picked[first] = True
        bad[row, picked] = np.nan
    elif kind == "+inf":
        picked[first] = True
        bad[row, picked] = np.inf
    elif kind == "all -inf":
        bad[row] = -np.inf
    elif kind == "+inf and -inf":
        bad[row] = np.where(picked, -np.inf, bad[row])
        bad[row, first] = np.inf
    else:  # some entries masked with -inf, at least one left finite
        picked[first] = False
        bad[row, picked] = -np.inf
    return x, bad, row, kind, picked


@BY_DTYPE
@given(data=st.data())
def test_nonfinite_rows_follow_ieee_semantics(dtype: np.dtype[Any], data: st.DataObject) -> None:
    x, bad, row, kind, masked = data.draw(_corrupted(dtype))
    others = np.arange(x.shape[0]) != row
    y, y_clean = softmax(bad), softmax(x)
    z, z_clean = log_softmax(bad), log_softmax(x)
    # Other rows are computed exactly as without the corrupted row.
    assert _same_rows(y, y_clean, others)
    assert _same_rows(z, z_clean, others)
    if kind != "masked":
        # NaN, or +inf (inf - inf is undefined), or only -inf (0 / 0): a row of NaN.
        assert np.isnan(y[row]).all()
        assert np.isnan(z[row]).all()
        return
    # -inf entries get probability exactly 0 (log-probability -inf); the rest is the
    # softmax of the finite entries alone.
    finite = ~masked
    assert (y[row, masked] == 0).all()
    assert (z[row, masked] == -np.inf).all()
    assert np.isfinite(y[row, finite]).all()
    assert not np.isnan(z[row, finite]).any()  # -inf only where x_i - m overflows
    assert abs(float(y[row].astype(np.float64).sum()) - 1) <= row_sum_bound(x.shape[1], dtype)
    expected = np.zeros_like(y[row])
    expected[finite] = softmax(bad[row, finite])
    assert _agree(y[row], expected, bad[row], dtype).all()
    expected_log = np.full_like(z[row], -np.inf)
    expected_log[finite] = log_softmax(bad[row, finite])
    assert _log_agree(z[row], expected_log, bad[row], dtype).all()


@st.composite
def _corrupted_upstream(
    draw: st.DrawFn, dtype: np.dtype[Any]
) -> tuple[FloatArray, FloatArray, FloatArray, int, float]:
    """Logits, an upstream, a copy of it with non-finite entries in one row, the row, the value."""
    x = draw(logits(dtype, shape=shapes(max_rows=6, max_cols=12)))
    dout = draw(upstreams((int(x.shape[0]), int(x.shape[1])), dtype))
    row = draw(st.integers(0, x.shape[0] - 1))
    value = draw(st.sampled_from((np.nan, np.inf, -np.inf)))
    picked = np.array(draw(st.lists(st.booleans(), min_size=x.shape[1], max_size=x.shape[1])))
    picked[draw(st.integers(0, x.shape[1] - 1))] = True
    bad = dout.copy()
    bad[row, picked] = value
    return x, dout, bad, row, value


@BY_DTYPE
@given(data=st.data())
def test_backward_propagates_nonfinite_upstream_per_row(
    dtype: np.dtype[Any], data: st.DataObject
) -> None:
    x, dout, bad, row, value = data.draw(_corrupted_upstream(dtype))
    others = np.arange(x.shape[0]) != row
    y, z = softmax(x), log_softmax(x)
    for backward, at in ((softmax_backward, y), (softmax_jvp, y), (log_softmax_backward, z)):
        dx, dx_clean = backward(bad, at), backward(dout, at)
        assert _same_rows(dx, dx_clean, others), backward.__name__
        # Every entry of the row depends on the row's inner product (or sum) with dout,
        # which is no longer finite: the whole row is, and NaN stays NaN.
        assert not np.isfinite(dx[row]).any(), backward.__name__
        if math.isnan(value):
            assert np.isnan(dx[row]).all(), backward.__name__


NONFINITE_X = np.array(
    [
        [np.nan, 1.0, 2.0],
        [np.inf, 1.0, 2.0],
        [-np.inf, 1.0, 2.0],
        [-np.inf, -np.inf, -np.inf],
        [np.inf, -np.inf, 0.0],
        [1.0, 2.0, 3.0],
    ]
)


@BY_DTYPE
def test_nonfinite_input_never_raises_even_under_errstate_raise(dtype: np.dtype[Any]) -> None:
    x = NONFINITE_X.astype(dtype)
    g = np.ones_like(x)
    g[5, 0] = np.nan
    with np.errstate(all="raise"):
        y, z = softmax(x), log_softmax(x)
        dx = softmax_backward(g, y)
        jt = softmax_jvp(g, y)
        dz = log_softmax_backward(g, z)
        ys, cache = staged_forward(x)
        staged = staged_backward(g, cache)
    expected_nan_rows = np.array([True, True, False, True, True, False])
    for out in (y, z, ys):
        assert np.isnan(out[expected_nan_rows]).all()
        assert not np.isnan(out[~expected_nan_rows]).any()
    for out in (dx, jt, dz, staged.dx):  # NaN in y or in dout: NaN rows
        assert np.isnan(out[[0, 1, 3, 4, 5]]).all()
        assert np.isfinite(out[2]).all()
    np.testing.assert_array_equal(y[2], [0.0, *softmax(x[2, 1:])])


# --- purity -----------------------------------------------------------------------------------


def _read_only(a: FloatArray) -> FloatArray:
    view: FloatArray = a.view()
    view.flags.writeable = False
    return view


def _run_all(x: FloatArray, dout: FloatArray) -> dict[str, FloatArray]:
    """Every public function on ``x`` and ``dout``, each given only the arrays passed in."""
    y, cache = staged_forward(x)
    out = {
        "softmax": softmax(x),
        "log_softmax": log_softmax(x),
        "staged_forward": y,
        **{f"cache.{k}": v for k, v in cache._asdict().items()},
    }
    probs = _read_only(out["softmax"])
    logp = _read_only(out["log_softmax"])
    frozen_cache = StagedCache(*(_read_only(a) for a in cache))
    out["softmax_backward"] = softmax_backward(dout, probs)
    out["softmax_jvp"] = softmax_jvp(dout, probs)
    out["log_softmax_backward"] = log_softmax_backward(dout, logp)
    grads = staged_backward(dout, frozen_cache)
    out.update({f"staged_backward.{k}": v for k, v in grads._asdict().items()})
    return out


@BY_DTYPE
@given(data=st.data())
def test_functions_are_pure(dtype: np.dtype[Any], data: st.DataObject) -> None:
    x = data.draw(logits(dtype, shape=shapes(max_rows=6, max_cols=12)), label="x")
    dout = data.draw(upstreams((int(x.shape[0]), int(x.shape[1])), dtype), label="dout")
    x_before, dout_before = x.copy(), dout.copy()
    results = _run_all(x, dout)
    # Inputs are not written to ...
    np.testing.assert_array_equal(x, x_before)
    np.testing.assert_array_equal(dout, dout_before)
    # ... not even attempted (read-only inputs work), and the results do not depend on it.
    again = _run_all(_read_only(x), _read_only(dout))
    for name, result in results.items():
        assert result.dtype == dtype, name
        assert not np.shares_memory(result, x), name
        assert not np.shares_memory(result, dout), name
        np.testing.assert_array_equal(again[name], result, err_msg=name)


@BY_DTYPE
def test_blocked_kernels_give_each_row_what_it_gives_alone(dtype: np.dtype[Any]) -> None:
    """The row kernels work in blocks of rows; a row's result is the same, bit for bit,
    wherever the block edges fall, non-finite rows included. 1031 rows of 384 entries span
    several 512 KiB blocks in either dtype, the last one short.
    """
    rng = np.random.default_rng(5)
    n, d = 1031, 384
    x = (rng.standard_normal((n, d)) * 4).astype(dtype)
    g = rng.standard_normal((n, d)).astype(dtype)
    special = rng.choice(n, size=12, replace=False)
    x[special[:4], 5] = 1000  # recomputed with the maximum
    g[special[4:8], 2] = np.inf
    g[special[8:], 7] = np.nan
    y = softmax(x)
    whole = {
        "softmax": y,
        "softmax_backward": softmax_backward(g, y),
        "softmax_jvp": softmax_jvp(g, y),
    }
    for row in np.concatenate([special, rng.choice(n, size=40, replace=False), [0, n - 1]]):
        one = slice(int(row), int(row) + 1)
        alone = {
            "softmax": softmax(x[one]),
            "softmax_backward": softmax_backward(g[one], y[one]),
            "softmax_jvp": softmax_jvp(g[one], y[one]),
        }
        for name, result in alone.items():
            np.testing.assert_array_equal(whole[name][one], result, err_msg=f"{name} row {row}")


# --- any rank, any axis; empty non-reduction axes -----------------------------------------------


def _vjp_agree(
    a: FloatArray, b: FloatArray, g: FloatArray, y: FloatArray, dtype: np.dtype[Any]
) -> BoolArray:
    """Whether two evaluations of y * (g - <g, y>) from the same g and y may both be correct.

    In any order, fl(<g, y>) is within gamma_D P + D sigma of <g, y> (P = sum_j |g_j y_j|,
    sigma the smallest subnormal, for products in the subnormal range); the subtraction
    and the product round once each. So each result is within
    B_i = gamma_{D+3} |y_i| (|g_i| + 2P) + (D + 2) sigma of the exact-arithmetic value,
    and two results differ by at most 2 B_i.
    """
    g64, y64 = np.abs(g.astype(np.float64)), np.abs(y.astype(np.float64))
    d = g.shape[-1]
    p = (g64 * y64).sum(axis=-1, keepdims=True)
    sigma = float(np.finfo(dtype).smallest_subnormal)
    bound = gamma(d + 3, dtype) * y64 * (g64 + 2 * p) + (d + 2) * sigma
    ok: BoolArray = np.abs(a.astype(np.float64) - b.astype(np.float64)) <= 2 * bound
    return ok


def _log_vjp_agree(
    a: FloatArray, b: FloatArray, g: FloatArray, z: FloatArray, dtype: np.dtype[Any]
) -> BoolArray:
    """Whether two evaluations of g - exp(z) sum(g) from the same g and z may both be correct.

    With e_i = exp(z_i): exp within 2 ulps (4u, or below lambda where it underflows),
    the sum within gamma_{D-1} sum|g|, the product and the subtraction one rounding each
    (the product sigma / 2 absolute in the subnormal range): each result is within
    B_i = gamma_{D+5} (e_i sum|g| + |g_i|) + 2 lambda sum|g| + sigma, so two differ by <= 2 B_i.
    """
    g64 = np.abs(g.astype(np.float64))
    e = np.exp(z.astype(np.float64))
    d = g.shape[-1]
    total = g64.sum(axis=-1, keepdims=True)
    finfo = np.finfo(dtype)
    lam, sigma = float(finfo.smallest_normal), float(finfo.smallest_subnormal)
    bound = gamma(d + 5, dtype) * (e * total + g64) + 2 * lam * total + sigma
    ok: BoolArray = np.abs(a.astype(np.float64) - b.astype(np.float64)) <= 2 * bound
    return ok


@BY_DTYPE
@given(
    data=st.data(),
    outer=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    d=st.integers(1, 7),
    axis=st.integers(-3, 2),
)
def test_any_rank_and_axis_match_the_2d_computation(
    dtype: np.dtype[Any], data: st.DataObject, outer: tuple[int, int], d: int, axis: int
) -> None:
    n = outer[0] * outer[1]
    x2 = data.draw(logits(dtype, shape=(n, d)), label="x")
    g2 = data.draw(upstreams((n, d), dtype), label="dout")
    y2, z2 = softmax(x2), log_softmax(x2)

    def to_3d(a: FloatArray) -> FloatArray:  # rows of a -> 1-D slices along `axis`
        return np.moveaxis(a.reshape(*outer, d), -1, axis)

    def to_2d(a: FloatArray) -> FloatArray:
        return np.moveaxis(a, axis, -1).reshape(n, d)

    x3, g3 = to_3d(x2), to_3d(g2)
    assert _agree(to_2d(softmax(x3, axis=axis)), y2, x2, dtype).all()
    assert _log_agree(to_2d(log_softmax(x3, axis=axis)), z2, x2, dtype).all()
    vjp = softmax_backward(g3, to_3d(y2), axis=axis)
    jvp = softmax_jvp(g3, to_3d(y2), axis=axis)
    assert _vjp_agree(to_2d(vjp), softmax_backward(g2, y2), g2, y2, dtype).all()
    assert _vjp_agree(to_2d(jvp), softmax_jvp(g2, y2), g2, y2, dtype).all()
    lsm = log_softmax_backward(g3, to_3d(z2), axis=axis)
    assert _log_vjp_agree(to_2d(lsm), log_softmax_backward(g2, z2), g2, z2, dtype).all()
    # Rank 1: a single row.
    assert _agree(softmax(x2[0]), y2[0], x2[:1], dtype).all()
    assert _log_agree(log_softmax(x2[0]), z2[0], x2[:1], dtype).all()
    assert _vjp_agree(
        softmax_backward(g2[0], y2[0]), softmax_backward(g2, y2)[0], g2[0], y2[0], dtype
    ).all()
    assert _log_vjp_agree(
        log_softmax_backward(g2[0], z2[0]), log_softmax_backward(g2, z2)[0], g2[0], z2[0], dtype
    ).all()


@BY_DTYPE
@pytest.mark.parametrize(
    ("shape", "axis"), [((0, 5), -1), ((3, 0), 0), ((2, 0, 4), 2), ((0, 4, 2), 1)]
)
def test_empty_non_reduction_axis_gives_an_empty_result(
    dtype: np.dtype[Any], shape: tuple[int, ...], axis: int
) -> None:
    x = np.empty(shape, dtype=dtype)
    results = [
        softmax(x, axis=axis),
        log_softmax(x, axis=axis),
        softmax_backward(x, x, axis=axis),
        softmax_jvp(x, x, axis=axis),
        log_softmax_backward(x, x, axis=axis),
    ]
    for result in results:
        assert result.shape == shape
        assert result.dtype == dtype
