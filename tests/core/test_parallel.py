"""Tests of the row-block parallelism (``softmax_verify.core.parallel``) and of its users.

* ``segments`` splits rows into contiguous, step-aligned segments that cover every row
  exactly once, and keeps small work on one thread.
* The reference softmax on several threads gives every row bit for bit what that row
  gives alone, including rows that need the maximum subtracted (large logits, NaN,
  +-inf), wherever they fall among the segments; and it stays silent under
  ``np.errstate(all="raise")``, which worker threads do not inherit.
* An exception in a worker reaches the caller.

Thread counts are forced with monkeypatch, so these run the threaded paths on any machine.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

import softmax_verify.core.parallel as parallel
from softmax_verify.bundled.reference import softmax


@pytest.mark.parametrize("threads", [1, 2, 3, 4])
@pytest.mark.parametrize(
    ("n", "step", "min_steps"), [(1, 1, 1), (10, 3, 1), (1000, 64, 8), (64, 64, 1), (4096, 64, 8)]
)
def test_segments_cover_every_row_once(
    monkeypatch: pytest.MonkeyPatch, threads: int, n: int, step: int, min_steps: int
) -> None:
    monkeypatch.setattr(parallel, "threads", lambda: threads)
    parts = parallel.segments(n, step, min_steps)
    assert parts[0][0] == 0
    assert parts[-1][1] == n
    assert all(a < b for a, b in parts)
    assert all(b == c for (_, b), (c, _) in itertools.pairwise(parts))  # contiguous
    assert all(b % step == 0 for _, b in parts[:-1])  # step-aligned
    assert 1 <= len(parts) <= threads
    steps = -(-n // step)
    if steps < 2 * min_steps:
        assert parts == [(0, n)]  # too little work for a second thread
    elif threads > 1:
        assert len(parts) > 1


def test_map_blocks_keeps_order_and_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parallel, "threads", lambda: 3)
    blocks = [(i, i + 1) for i in range(10)]
    assert parallel.map_blocks(lambda b: b[0] * 2, blocks) == [2 * i for i in range(10)]

    def fail(block: tuple[int, int]) -> int:
        if block[0] == 7:
            raise ValueError("block 7")
        return 0

    with pytest.raises(ValueError, match="block 7"):
        parallel.map_blocks(fail, blocks)


@pytest.mark.parametrize("threads", [2, 4])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
def test_threaded_softmax_gives_each_row_what_it_gives_alone(
    monkeypatch: pytest.MonkeyPatch, threads: int, dtype: type
) -> None:
    monkeypatch.setattr(parallel, "threads", lambda: threads)
    rng = np.random.default_rng(3)
    n, d = 4099, 512  # 8 MiB and more: split; an odd count, so the last segment is short
    x: NDArray[Any] = (rng.standard_normal((n, d)) * 4).astype(dtype)
    special = rng.choice(n, size=40, replace=False)
    x[special[:10], 3] = 1000  # overflows unshifted: recomputed with the maximum
    x[special[10:20]] -= 2000  # every logit very negative: recomputed too
    x[special[20:25], 7] = np.nan
    x[special[25:30], 9] = np.inf
    x[special[30:40], 11] = -np.inf
    assert len(parallel.segments(n, max(1, (1 << 19) // (d * x.itemsize)), 8)) > 1
    with np.errstate(all="raise"):  # the workers set their own errstate
        whole = softmax(x)
    rows = np.concatenate([special, rng.choice(n, size=60, replace=False), [0, n - 1]])
    for row in rows:
        alone = softmax(x[row : row + 1])
        np.testing.assert_array_equal(whole[row : row + 1], alone, err_msg=f"row {row}")
