"""Row-block parallelism shared by the reference kernels and the gradient checks.

Rows of a softmax are independent, and numpy releases the GIL inside its loops, so
contiguous groups of rows can run on several threads of one process, as the frameworks'
own kernels do. Each task computes exactly what it would compute alone: results never
depend on the number of threads or on the order in which tasks finish.

A pool lives only for one call: a pool kept between calls would outlive a ``fork`` of
the process (its threads would not), and starting a few threads costs well under the
work that is split (see ``segments``).
"""

from __future__ import annotations

import contextvars
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

__all__ = ["map_blocks", "segments", "threads"]

T = TypeVar("T")

#: The most threads used: the machines this runs on have a few cores, and memory
#: bandwidth, not arithmetic, bounds these passes beyond that.
_MAX_THREADS = 4


def threads() -> int:
    """Threads for blockwise work: the cores this process may use, up to ``_MAX_THREADS``."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on every platform
        cores = os.cpu_count() or 1
    return max(1, min(cores, _MAX_THREADS))


def map_blocks(func: Callable[[tuple[int, int]], T], blocks: list[tuple[int, int]]) -> list[T]:
    """``[func(block) for block in blocks]``, on several threads when there are several blocks.

    Each thread takes one contiguous run of the blocks, in order, as one task: a task per
    block (hundreds of cache-sized blocks per pass) cost more in hand-offs between threads
    than the second thread gained. Results come back in block order. ``func`` must only
    write to rows of its own block, and must set any context-local numpy state it needs
    (``np.errstate``, ``np.setbufsize``) itself: a worker thread does not inherit the
    caller's. Context variables are carried over: each run executes in its own copy of the
    caller's context. (Nothing of the tolerances' is among them: the half-precision
    accumulation model is an argument, passed to the code that runs here.)
    """
    count = min(threads(), len(blocks))
    if count <= 1:
        return [func(block) for block in blocks]
    bounds = [len(blocks) * i // count for i in range(count + 1)]
    runs = [blocks[bounds[i] : bounds[i + 1]] for i in range(count)]
    contexts = [contextvars.copy_context() for _ in runs]  # one each: a context runs once at a time
    with ThreadPoolExecutor(count) as pool:
        done = list(
            pool.map(
                lambda ctx, run: ctx.run(lambda: [func(block) for block in run]), contexts, runs
            )
        )
    return [result for run in done for result in run]


def segments(n: int, step: int, min_steps: int) -> list[tuple[int, int]]:
    """Split rows ``0:n`` into one contiguous segment per thread, each a multiple of ``step``
    rows (the last takes the rest); a single segment when there are fewer than ``min_steps``
    steps of rows per thread (too little work to be worth a thread)."""
    steps = -(-n // step)
    parts = min(threads(), steps // max(1, min_steps))
    if parts <= 1:
        return [(0, n)]
    per = -(-steps // parts) * step
    return [(start, min(start + per, n)) for start in range(0, n, per)]
