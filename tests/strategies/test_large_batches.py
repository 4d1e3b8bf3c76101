"""Meta-tests: every array strategy draws a batch of thousands of rows, under Hypothesis's
own health checks.

A drawn example holds at most 8 KiB of Hypothesis choices. A strategy that draws a few
choices for every row can draw no batch of a few thousand rows at all: every attempt
overruns, and a user's ``--rows 5000:5000`` ends in ``Unsatisfiable`` for every check. So
each strategy's choices are bounded whatever the number of rows (the logits' structure is a
few special rows; labels and masks draw at most ``INDEX_ROWS``, ``PROBABILITY_ROWS`` or
``DRAWN_ROWS`` rows and repeat them in turn, masks with noise of their own). These run with
every health check on: ``large_base_example`` and ``data_too_large`` too, the second of
which the verdict's settings turn off.
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis.strategies import SearchStrategy

from softmax_verify.strategies import (
    class_labels,
    directions,
    logits,
    masked_logits,
    probability_labels,
    upstreams,
    well_conditioned_logits,
)

# Private modules (the installed package's stub types the public API only).
_LABELS = importlib.import_module("softmax_verify.strategies._labels")
INDEX_ROWS: int = _LABELS.INDEX_ROWS
PROBABILITY_ROWS: int = _LABELS.PROBABILITY_ROWS

LARGE = settings(max_examples=5, deadline=None)
ROWS = 5000


def _strategies() -> dict[str, SearchStrategy[Any]]:
    shape = (ROWS, 8)
    return {
        "logits": logits(np.float32, shape=shape),
        "well_conditioned_logits": well_conditioned_logits(np.float32, shape=shape),
        "masked_logits": masked_logits(np.float32, shape=shape),
        "upstreams": upstreams(shape, np.float32),
        "directions": directions(shape, np.float32),
        "class_labels": class_labels(ROWS, 8),
        "probability_labels": probability_labels(ROWS, 8, np.float32),
    }


@pytest.mark.parametrize("name", list(_strategies()))
def test_a_batch_of_thousands_of_rows_is_drawn(name: str) -> None:
    strategy = _strategies()[name]

    @LARGE
    @given(strategy)
    def drawn(value: Any) -> None:
        assert len(value) == ROWS

    drawn()


@LARGE
@given(class_labels(ROWS, 8), probability_labels(ROWS, 8, np.float64))
def test_labels_beyond_the_drawn_rows_repeat_them(
    indices: np.ndarray[Any, Any], rows: np.ndarray[Any, Any]
) -> None:
    assert (indices[INDEX_ROWS:] == np.resize(indices[:INDEX_ROWS], ROWS - INDEX_ROWS)).all()
    assert (indices >= 0).all()
    assert (indices < 8).all()
    repeated = np.resize(rows[:PROBABILITY_ROWS], (ROWS - PROBABILITY_ROWS, 8))
    assert (rows[PROBABILITY_ROWS:] == repeated).all()
    assert (rows.sum(axis=1) == 1).all()
