"""jax targets compiled once per column count, never with their columns padded.

``jax.jit`` compiles a program for every input shape, and Hypothesis draws a new shape
for nearly every example: a ci run spent most of its time in XLA's compiler. Four
things cut that cost, none of which changes what the code under test computes:

- **Recurring row lengths.** A run on a jax target draws its row lengths from a palette
  (``strategies.kernel_shapes(recurring_cols=True)``, chosen by the run plan for jax
  targets only: ``RunPlan.for_target``): each remainder mod 8 below 8 and again past a
  block of 8 (1 to 9, 18, 27, 36, 45, 54, 63), 16, 32 and 64, every block boundary
  (``BOUNDARY_COLS``: 127/128/129 ... 8191/8192) and four arbitrary long lengths (97,
  300, 999, 3003). A ci run then compiles about 40 programs per dtype, not 75. Every
  length still reaches the code under test as drawn, unpadded. The price: a bug at a
  length outside the palette alone (a kernel wrong at D = 23 but right at 18, 27 and
  every boundary) is not drawn; a kernel's remainder, block and boundary handling is.
- **Rows in blocks.** Rows of a softmax are independent, so a batch is cut into blocks
  of ``BLOCK_ROWS`` rows (fewer for long rows: at most ``BLOCK_ENTRIES`` entries, so a
  row of 8192 is not computed with 31 rows of padding), the last one padded with zero
  rows whose output is dropped. Every batch, the gradient checks' stacked ones
  included, then runs on one program per column count and dtype. The columns (the
  softmax axis) are never padded. The price: a bug that depends on the number of rows
  alone (a kernel tiling rows, say) is hidden.
- **One program for the forward and its VJP.** ``lax.cond`` on a flag picks ``fn(a)``
  (``fn`` itself, not a ``custom_vjp``'s forward rule) or ``vjp(fn, a)(g)``: one
  compile, and each call runs only its own branch. XLA's compile time is mostly fixed
  cost per program, so one program for both costs about half of two.
- **Less compiler optimisation** (``COMPILER_OPTIONS``, given to these ``jax.jit`` calls
  only, never set globally): no LLVM optimisation passes, XLA's CPU elemental emitters
  instead of its newer fusion emitters, and the module compiled in one piece rather
  than split across threads. Together they cut the CPU time of compiling a softmax and
  its VJP about six-fold (bench/results.md). They change how fast the machine code
  runs, not its IEEE semantics: XLA's CPU backend enables no fast-math by default, and
  either emitter computes the HLO's operations as written. A jax that does not know an
  option gets none of them (``compiler_options``), never an error blamed on the code
  under test.

In the command line's child process (never in the user's own process: ``verify()`` runs
there), compiled programs are also kept on disk, in jax's persistent compilation cache
under ``$XDG_CACHE_HOME/softmax-verify/jax`` (``persistent_cache``): a second run on the
same target compiles nothing again. Entries are keyed by the program's HLO and options,
so a changed target is compiled afresh. There too, programs run inline in the calling
thread (``jax_cpu_enable_async_dispatch`` off), which halves the CPU time of a call.

A target that jax cannot differentiate, or whose output is not shaped as its input,
still has its forward checked: if the combined program fails to build, the forward
runs alone, and the backward raises jax's error.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "BLOCK_ENTRIES",
    "BLOCK_ROWS",
    "COMPILER_OPTIONS",
    "MAX_PROGRAMS",
    "BucketedJit",
    "block_rows",
    "blocks",
    "compiler_options",
    "configure_child",
    "persistent_cache",
]

#: Rows per call of the code under test: above the strategies' largest batch (24 rows),
#: so an ordinary batch is one call; a stacked batch of the gradient checks is several.
BLOCK_ROWS = 32
#: Entries per block beyond which a block has fewer rows (``block_rows``): a long example
#: has a row or two, and 32 rows of 8192 columns computed 30 padding rows for each.
BLOCK_ENTRIES = 8192

#: XLA options for the programs compiled here (see the module docstring).
COMPILER_OPTIONS: dict[str, Any] = {
    "xla_backend_optimization_level": 0,
    "xla_llvm_disable_expensive_passes": True,
    "xla_cpu_use_fusion_emitters": False,
    "xla_cpu_parallel_codegen_split_count": 1,
}

_accepted: list[dict[str, Any]] = []  # compiler_options' answer, once per process
_on_disk: list[str] = []  # the persistent cache's folder, once persistent_cache() is called


def persistent_cache() -> None:
    """Keep the programs compiled in this process on disk, for the next run, and run them
    inline: called by the command line's child process only. Takes effect when a jax
    target is built."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    _on_disk[:] = [os.path.join(base, "softmax-verify", "jax")]


def configure_child(jax: Any) -> None:
    """In the command line's child process: compiled programs kept on disk and run inline
    (``persistent_cache``); elsewhere nothing."""
    if not _on_disk:
        return
    # A call of a compiled program runs in the calling thread rather than being handed
    # to another and waited for: a (32, D) block then costs about 70 us of CPU instead
    # of 150 (bench/results.md). Read when jax creates its CPU client: a target that
    # ran jax code while being imported keeps the default, and is only slower.
    jax.config.update("jax_cpu_enable_async_dispatch", False)
    try:
        os.makedirs(_on_disk[0], exist_ok=True)
    except OSError:  # no writable cache folder: compile as usual
        return
    jax.config.update("jax_compilation_cache_dir", _on_disk[0])
    # by default jax keeps only programs that took a second or more to compile; these take
    # a few hundredths of a second each, and a run compiles about a hundred of them
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


#: Distinct (shape, dtype) pairs compiled before the compiled programs are dropped: each
#: stays mapped in memory, and a thorough run once failed with "LLVM compilation error:
#: Cannot allocate memory" and a segfault.
MAX_PROGRAMS = 512


def compiler_options() -> dict[str, Any]:
    """``COMPILER_OPTIONS`` if this jax and its backend accept them (one tiny program is
    compiled to ask, once per process), else none: they only save time."""
    if not _accepted:
        import jax

        try:
            probe = jax.jit(lambda a: a + 1, compiler_options=COMPILER_OPTIONS)
            probe.lower(np.zeros(2, np.float32)).compile()
            _accepted.append(dict(COMPILER_OPTIONS))
        except Exception:  # an option this jax does not know: compile as jax would
            _accepted.append({})
    return _accepted[0]


_FORWARD, _BACKWARD = np.False_, np.True_  # the branch flag of ``BucketedJit._both``


def block_rows(cols: int) -> int:
    """Rows per block for rows of ``cols`` entries: ``BLOCK_ROWS``, or fewer for long rows
    so that a block holds at most ``BLOCK_ENTRIES`` entries (at least one row)."""
    return max(1, min(BLOCK_ROWS, BLOCK_ENTRIES // max(cols, 1)))


def blocks(a: NDArray[Any]) -> list[NDArray[Any]]:
    """``a``'s rows in blocks of ``block_rows`` rows, the last padded with zero rows (at
    least one block, so an empty batch still calls the code under test once)."""
    n = a.shape[0]
    rows = block_rows(a.shape[1] if a.ndim > 1 else 1)
    count = max(1, -(-n // rows))
    padded = np.zeros((count * rows, *a.shape[1:]), dtype=a.dtype)
    padded[:n] = a
    return [padded[i * rows : (i + 1) * rows] for i in range(count)]


class BucketedJit:
    """``forward(x) -> (y, cache)`` and ``backward(dout, cache) -> dx`` for a jax function
    ``fn`` of an (N, D) array, jitted, run on blocks of ``BLOCK_ROWS`` rows.

    The backward is ``jax.vjp(fn, a)`` applied to the upstream, in the same compiled
    program as the forward: ``lax.cond`` on a flag runs one branch per call, ``fn(a)``
    or the VJP (which recomputes the forward, as ``jax.grad`` of a jitted function
    would). A target whose output is not shaped as its input cannot take both branches
    of one program: it runs as two programs (``_separate``), as one jax cannot
    differentiate does.
    """

    def __init__(self, fn: Callable[[Any], Any]) -> None:
        import jax

        self._jax: Any = jax
        configure_child(jax)
        self._fn = fn
        self._options = compiler_options()
        self._both = jax.jit(self._forward_or_vjp, compiler_options=self._options)
        self._apart: tuple[Any, Any] | None = None  # built only if ``_both`` cannot be
        self._seen: set[tuple[tuple[int, ...], str]] = set()

    def _forward_or_vjp(self, a: Any, g: Any, backward: Any) -> Any:
        """``fn(a)``, or with ``backward`` the VJP of ``fn`` at ``a`` applied to ``g``."""
        jax, fn = self._jax, self._fn
        return jax.lax.cond(
            backward, lambda a, g: jax.vjp(fn, a)[1](g)[0], lambda a, g: fn(a), a, g
        )

    def _separate(self) -> tuple[Any, Any]:
        if self._apart is None:
            jit, fn, options = self._jax.jit, self._fn, self._options
            self._apart = (
                jit(fn, compiler_options=options),
                jit(lambda a, g: self._jax.vjp(fn, a)[1](g)[0], compiler_options=options),
            )
        return self._apart

    def _note(self, shape: tuple[int, ...], dtype: np.dtype[Any]) -> None:
        key = (shape, dtype.str)
        if key not in self._seen:
            if len(self._seen) >= MAX_PROGRAMS:
                self._jax.clear_caches()
                self._seen.clear()
            self._seen.add(key)

    def _forward_block(self, a: Any) -> Any:
        if self._apart is None:
            try:
                return self._both(a, a, _FORWARD)  # ``a`` as the unused upstream
            except Exception:  # not differentiable by jax: the forward alone is still checked
                pass
        return self._separate()[0](a)

    def _backward_block(self, a: Any, g: Any) -> Any:
        if self._apart is None:
            return self._both(a, g, _BACKWARD)
        return self._separate()[1](a, g)

    def forward(self, x: NDArray[Any]) -> tuple[NDArray[Any], tuple[list[Any], int]]:
        n = x.shape[0]
        # numpy blocks go to the compiled program as they are: jnp.asarray would compile a
        # small program of its own per shape, and device_put costs more than the call
        parts = blocks(x)
        self._note(parts[0].shape, x.dtype)
        y = np.concatenate([np.asarray(self._forward_block(a)) for a in parts])
        return y[:n], (parts, n)

    def backward(self, dout: NDArray[Any], cache: tuple[list[Any], int]) -> NDArray[Any]:
        parts, n = cache
        upstream = blocks(dout)
        dx = [np.asarray(self._backward_block(a, g)) for a, g in zip(parts, upstream, strict=True)]
        return np.concatenate(dx)[:n]
