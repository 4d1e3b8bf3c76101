"""The extra cost of a library's target: its child's start (the library's import with the
target's), its first calls, each later call, and reading its arrays as numpy arrays."""

from __future__ import annotations

import importlib.util
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
from _common import ROOT, Array, BenchOptions, Section, interleaved_medians, ms, optional

from softmax_verify.core.options import Options
from softmax_verify.isolation.remote import RemoteImplementation
from softmax_verify.target.arrays import ArrayLog
from softmax_verify.target.load import TargetSpec

#: The (16, 32) float64 input every call gets: an ordinary example's size.
SHAPE = (16, 32)
#: Warm calls timed per case and round (their median is the per-call cost).
CALLS = 20


@dataclass(frozen=True)
class Case:
    """A library's softmax as its users name it, and the module it needs."""

    label: str
    target: str | None
    module: str | None = None
    backward: str | None = None
    autodiff: str | None = None

    def spec(self) -> TargetSpec:
        return TargetSpec(self.target, self.backward, Options(autodiff=self.autodiff))


def _tests(name: str) -> str:
    return str(ROOT / "tests" / name)


CASES = (
    Case("the reference (numpy: the floor)", None),
    Case("scikit-learn", "sklearn.utils.extmath:softmax", "sklearn"),
    Case("thinc", "thinc.api:NumpyOps.softmax", "thinc", "thinc.api:NumpyOps.backprop_softmax"),
    Case("mygrad", "mygrad.nnet:softmax", "mygrad"),
    Case(
        "autograd (a softmax of autograd.numpy)",
        _tests("autograd_targets.py:autograd_softmax"),
        "autograd",
        autodiff="autograd",
    ),
    Case(
        "torch (a function of torch ops)",
        _tests("torch_targets.py:torch_softmax"),
        "torch",
        autodiff="torch",
    ),
    Case("jax", "jax.nn:softmax", "jax"),
    Case("TensorFlow", "tensorflow:nn.softmax", "tensorflow"),
    Case("keras 3, tensorflow backend", "keras.ops:softmax", "keras"),
)

NOTES = [
    "Each case in a fresh child, as `softmax-verify check` starts it: start and load is "
    "the child's start, its import of the target (and so of the library) and the reading; "
    "CPU is the child's user + system time over its whole life. The per-call columns are "
    "medians of 20 warm calls on a (16, 32) float64 input through the child (the round "
    "trip included: the floor's row is its cost); first is the first call of each, "
    "where jax compiles and TensorFlow builds its kernels.",
    "Rounds interleaved, the cases in a fresh random order each round; medians of the "
    "rounds. A cold jax compilation cache each time (a fresh XDG_CACHE_HOME); keras on its "
    "tensorflow backend (KERAS_BACKEND), with a fresh KERAS_HOME.",
    "Conversion: ArrayLog.numpy (numpy.asarray, then a copy) on each library's array, in "
    "process, against numpy's own copy of a numpy array of the same size (the floor).",
]


@contextmanager
def _fresh_environment() -> Iterator[None]:
    """A cold jax cache and keras's tensorflow backend for the children, restored after."""
    saved = {k: os.environ.get(k) for k in ("XDG_CACHE_HOME", "KERAS_HOME", "KERAS_BACKEND")}
    with tempfile.TemporaryDirectory(prefix="softmax-verify-bench-") as folder:
        os.environ["KERAS_HOME"] = folder
        os.environ["KERAS_BACKEND"] = "tensorflow"
        try:
            yield
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def _timed(call: Callable[[], object]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def _one_child(case: Case, x: Array) -> list[float]:
    """[start and load, CPU, first forward, forward per call, first vjp, vjp per call]."""
    with tempfile.TemporaryDirectory(prefix="softmax-verify-bench-jax-") as cache:
        os.environ["XDG_CACHE_HOME"] = cache
        before = os.times()
        remote = RemoteImplementation(case.spec())
        try:
            load = _timed(remote.load)
            first = _timed(lambda: remote.forward(x))
            warm = statistics.median(_timed(lambda: remote.forward(x)) for _ in range(CALLS))
            first_vjp = warm_vjp = float("nan")
            if remote.has_backward:
                first_vjp = _timed(lambda: remote.vjp(x, x))
                warm_vjp = statistics.median(_timed(lambda: remote.vjp(x, x)) for _ in range(CALLS))
        finally:
            remote.close()
        after = os.times()
    cpu = (after.children_user - before.children_user) + (
        after.children_system - before.children_system
    )
    return [load, cpu, first, warm, first_vjp, warm_vjp]


def _children(opts: BenchOptions, cases: list[Case]) -> Section:
    section = Section(
        "Extra cost per library: the child's start and each call, (16, 32) float64",
        ("library", "target", "start and load", "child CPU", "first forward",
         "forward per call", "first vjp", "vjp per call"),
    )  # fmt: skip
    rounds = 1 if opts.quick else 3
    x = np.random.default_rng(0).standard_normal(SHAPE)
    times: dict[str, list[list[float]]] = {case.label: [] for case in cases}
    order = random.Random(rounds)
    with _fresh_environment():
        for _ in range(rounds):
            for case in order.sample(cases, len(cases)):
                times[case.label].append(_one_child(case, x))
    for case in cases:
        medians = [statistics.median(column) for column in zip(*times[case.label], strict=True)]
        target = case.target or "reference"
        if case.backward:
            target += f" --backward {case.backward}"
        if case.autodiff:
            target += f" --autodiff {case.autodiff}"
        shown = target.replace(str(ROOT) + os.sep, "")
        section.rows.append([case.label, f"`{shown}`", *(ms(t) for t in medians)])
    section.notes = [*NOTES[:2], f"{rounds} round(s)."]
    return section


def _arrays(modules: dict[str, Any], shape: tuple[int, int]) -> dict[str, Any]:
    """Each library's array of ``shape`` (float64), by its name."""
    data = np.random.default_rng(1).standard_normal(shape)
    made: dict[str, Any] = {"numpy (numpy.array copy: the floor)": data}
    if modules.get("tensorflow") is not None:
        made["tensorflow EagerTensor"] = modules["tensorflow"].constant(data)
    if modules.get("jax") is not None:
        made["jax Array"] = modules["jax"].device_put(data)
    if modules.get("mygrad") is not None:
        made["mygrad Tensor"] = modules["mygrad"].Tensor(data)
    if modules.get("torch") is not None:
        made["torch Tensor"] = modules["torch"].from_numpy(data.copy())
    return made


def _reader(array: Any) -> Callable[[], object]:
    """A numpy array's copy (the floor), or another library's array read by ArrayLog."""
    if isinstance(array, np.ndarray):
        return lambda: np.array(array, copy=True)
    log = ArrayLog()
    return lambda: log.numpy("forward", "y", array)


def _conversion(opts: BenchOptions) -> Section:
    names = ("tensorflow", "jax", "mygrad", "torch")
    modules = {name: optional(name) for name in names}
    if modules["jax"] is not None:
        modules["jax"].config.update("jax_enable_x64", True)
    shapes = ((16, 32), (1024, 1024))
    section = Section(
        "Extra cost per library: reading its arrays as numpy arrays, float64",
        ("array", *(f"{n}x{d}" for n, d in shapes), *(f"/ floor, {n}x{d}" for n, d in shapes)),
    )
    columns: dict[str, list[float]] = {}
    for shape in shapes:
        made = _arrays(modules, shape)
        funcs = [_reader(array) for array in made.values()]
        for name, seconds in zip(made, interleaved_medians(funcs, opts.repeat), strict=True):
            columns.setdefault(name, []).append(seconds)
    floor = columns["numpy (numpy.array copy: the floor)"]
    for name, times in columns.items():
        ratios = [f"{t / f:.2f}x" for t, f in zip(times, floor, strict=True)]
        section.rows.append([name, *(f"{t * 1e6:.1f} us" for t in times), *ratios])
    section.notes = [NOTES[2], f"Medians of {opts.repeat} interleaved rounds."]
    missing = [name for name, module in modules.items() if module is None]
    if missing:
        section.notes.append(f"not installed, not measured: {', '.join(missing)}")
    return section


def libraries(opts: BenchOptions) -> tuple[Section, Section]:
    """The child table (the libraries installed), then the conversion table."""
    # find_spec, not an import: keras would write its keras.json into ~/.keras here
    cases = [c for c in CASES if c.module is None or importlib.util.find_spec(c.module)]
    skipped = [c.label for c in CASES if c not in cases]
    children = _children(opts, cases)
    if skipped:
        children.notes.append(f"not installed, not measured: {', '.join(skipped)}")
    print(f"(libraries measured: {len(cases)})", file=sys.stderr)
    return children, _conversion(opts)
