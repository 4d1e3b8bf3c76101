"""The kernels: the reference ``softmax`` and ``softmax_backward`` against scipy, torch,
jax, the straightforward numpy backward and one ``numpy.exp`` pass (the floor)."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
from _common import Array, BenchOptions, Section, interleaved_medians, missing, ms, ratios

import softmax_verify.core.parallel as parallel
from softmax_verify.bundled.reference import softmax, softmax_backward

SHAPES: tuple[tuple[int, int], ...] = ((1024, 1024), (4096, 4096), (65536, 64), (64, 65536))
DTYPES: tuple[type[np.floating[Any]], ...] = (np.float32, np.float64)


def straightforward_backward(g: Array, y: Array) -> Array:
    """The textbook backward in numpy: ``y * (g - <g, y>)``."""
    out: Array = y * (g - (g * y).sum(axis=1, keepdims=True))
    return out


def time_kernels(
    x: Array,
    g: Array,
    repeat: int,
    scipy: Any,
    torch: Any,
    torch_backward: Any,
    jnp: Any,
    jit_forward: Any,
    jit_backward: Any,
) -> tuple[list[float], list[float]]:
    """Medians (seconds): forward [exp, reference, scipy, torch, jax] and backward
    [exp, reference, straightforward, torch, jax]; NaN where a framework is missing."""
    nan = float("nan")
    y = softmax(x)
    funcs: dict[str, Callable[[], object]] = {
        "exp": lambda: np.exp(x),
        "forward": lambda: softmax(x),
        "backward": lambda: softmax_backward(g, y),
        "straightforward": lambda: straightforward_backward(g, y),
    }
    if scipy is not None:
        special = scipy.special
        funcs["scipy"] = lambda: special.softmax(x, axis=1)
    if torch is not None:
        xt, gt, yt = (torch.from_numpy(a) for a in (x, g, y))
        funcs["torch"] = lambda: torch.softmax(xt, dim=1)
        if torch_backward is not None:
            funcs["torch backward"] = lambda: torch_backward(gt, yt, 1, yt.dtype)
    if jnp is not None:
        xj, gj, yj = (jnp.asarray(a) for a in (x, g, y))
        funcs["jax"] = lambda: jit_forward(xj).block_until_ready()
        funcs["jax backward"] = lambda: jit_backward(gj, yj).block_until_ready()
    t = dict(zip(funcs, interleaved_medians(list(funcs.values()), repeat), strict=True))
    forward = [t["exp"], t["forward"], t.get("scipy", nan), t.get("torch", nan), t.get("jax", nan)]
    backward = [
        t["exp"],
        t["backward"],
        t["straightforward"],
        t.get("torch backward", nan),
        t.get("jax backward", nan),
    ]
    return forward, backward


def kernels(opts: BenchOptions, torch: Any, jax: Any, scipy: Any) -> tuple[Section, Section]:
    """The forward and backward tables: every candidate timed on each shape and dtype."""
    forward, backward = _forward_table(), _backward_table()
    jnp, jit_forward, jit_backward = _jax_kernels(jax)
    torch_backward = _torch_backward(torch)
    shapes = [s for s in SHAPES if not (opts.quick and s == (4096, 4096))]
    rng = np.random.default_rng(0)
    for shape in shapes:
        for dtype in DTYPES:
            x = (rng.standard_normal(shape) * 3).astype(dtype)
            g = rng.standard_normal(shape).astype(dtype)
            repeat = max(3, opts.repeat // 3) if shape == (4096, 4096) else opts.repeat
            f, b = time_kernels(
                x, g, repeat, scipy, torch, torch_backward, jnp, jit_forward, jit_backward
            )
            name = np.dtype(dtype).name
            forward.rows.append([str(shape), name, *(ms(t) for t in f), *ratios(f)])
            backward.rows.append([str(shape), name, *(ms(t) for t in b), *ratios(b)])
            print(f"  kernels {shape} {name} done", file=sys.stderr, flush=True)
    _kernel_notes(opts, torch, jax, scipy, torch_backward, forward, backward)
    return forward, backward


def _forward_table() -> Section:
    """The forward table, its rows still to fill."""
    return Section(
        "Forward: softmax along axis 1",
        (
            "shape",
            "dtype",
            "numpy.exp (floor)",
            "reference",
            "scipy",
            "torch",
            "jax (jit)",
            "ref / exp",
            "scipy / ref",
            "torch / ref",
            "jax / ref",
        ),
    )


def _backward_table() -> Section:
    """The backward table, its rows still to fill."""
    return Section(
        "Backward: dx = y * (g - <g, y>) given y",
        (
            "shape",
            "dtype",
            "numpy.exp (floor)",
            "reference",
            "straightforward numpy",
            "torch",
            "jax (jit)",
            "ref / exp",
            "straightforward / ref",
            "torch / ref",
            "jax / ref",
        ),
    )


def _jax_kernels(jax: Any) -> tuple[Any, Any, Any]:
    """jax.numpy and the jitted forward and backward (float64 enabled); Nones without jax."""
    if jax is None:
        return None, None, None
    jax.config.update("jax_enable_x64", True)  # float64 must really be float64
    jnp = importlib.import_module("jax.numpy")
    jit_forward = jax.jit(lambda a: jax.nn.softmax(a, axis=1))
    jit_backward = jax.jit(lambda g, y: y * (g - jnp.sum(g * y, axis=1, keepdims=True)))
    return jnp, jit_forward, jit_backward


def _torch_backward(torch: Any) -> Any:
    """torch's softmax backward kernel, or None without torch or where it is unavailable."""
    if torch is None:
        return None
    return getattr(torch.ops.aten, "_softmax_backward_data", None)


def _kernel_notes(
    opts: BenchOptions,
    torch: Any,
    jax: Any,
    scipy: Any,
    torch_backward: Any,
    forward: Section,
    backward: Section,
) -> None:
    """Adds the notes under the forward and backward tables: what was run, and how."""
    for section in (forward, backward):
        section.notes.append(
            "ref / exp: the reference's time over one numpy.exp pass on the same array "
            "(allocating its output, as the reference does); the floor is 1.00x."
        )
        section.notes.append(
            f"Medians of {opts.repeat} rounds; each round times every candidate of the shape "
            "once (forward and backward tables alike), in a random order drawn afresh each "
            "round, so that no candidate always runs right after one that left its inputs in "
            "cache."
        )
        if torch is None:
            section.notes.append(missing("torch"))
        else:
            section.notes.append(
                f"torch runs on {torch.get_num_threads()} threads (its default); numpy and "
                "scipy on one; the reference's softmax on up to "
                f"{parallel.threads()} for arrays of 8 MiB and more, its backward on one."
            )
        if jax is None:
            section.notes.append(missing("jax"))
        if scipy is None and section is forward:
            section.notes.append(missing("scipy"))
    if torch is not None and torch_backward is None:
        backward.notes.append("torch.ops.aten._softmax_backward_data unavailable: not measured")
    if jax is not None:
        backward.notes.append("jax: the same formula, jitted (what jax.vjp of softmax computes).")
    if opts.quick:
        forward.notes.append("--quick: (4096, 4096) skipped")
