"""The shapes an implementation declares it supports (``strategies.shapes_in`` draws them).

Kernels often support only some shapes: a fixed block of columns, at most so many
rows. ``Domain`` says which, as one validated value that travels from the command
line (``--rows MIN:MAX``, ``--cols MIN:MAX``, ``--cols-multiple-of K``), ``verify()``
or ``SoftmaxContract.domain`` to the case strategies. The default, ``Domain()``,
restricts nothing: short rows (``D % 8 != 0``, ``N == D`` squares) and long rows up
to ``LONG_MAX_COLS`` columns at block boundaries are all drawn
(``strategies.kernel_shapes``).

For a target compiled once per shape (a jax target), the run chooses
``recurring_cols``: the same few row lengths recur across examples and invariants, so
a run compiles a few dozen programs rather than one per drawn length
(``strategies.kernel_shapes``, softmax_verify.target.jax_buckets).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

__all__ = ["LONG_MAX_COLS", "RECURRING_ARBITRARY_COLS", "RECURRING_SHORT_COLS", "Domain"]

#: The longest rows ``strategies.kernel_shapes`` draws by default: a vocabulary-sized block.
LONG_MAX_COLS = 8192
#: Short row lengths of ``strategies.kernel_shapes(recurring_cols=True)``: every remainder mod 8
#: on its own (1 to 8), each again past a full block of 8 (9, 18, 27, 36, 45, 54, 63),
#: and the vector widths 16, 32 and 64 exactly.
RECURRING_SHORT_COLS: tuple[int, ...] = (*range(1, 10), 16, 18, 27, 32, 36, 45, 54, 63, 64)
#: Long row lengths of ``strategies.kernel_shapes(recurring_cols=True)`` away from the block
#: boundaries: tails of 1, 4, 7 and 3 past a multiple of 8, of 97, 44, 103 and 59 past
#: a multiple of 128, and past 256, 512 and 2048 (3003 = 2048 + 955).
RECURRING_ARBITRARY_COLS: tuple[int, ...] = (97, 300, 999, 3003)


def _bounds(value: object, name: str) -> tuple[int, int] | None:
    if value is None:
        return None
    if not isinstance(value, tuple) or len(value) != 2:
        raise TypeError(f"{name} must be a (min, max) tuple of ints or None, got {value!r}")
    low, high = value
    for end in (low, high):
        if isinstance(end, bool) or not isinstance(end, int):
            raise TypeError(f"{name} must be a (min, max) tuple of ints, got {value!r}")
    if low < 1 or high < low:
        raise ValueError(f"{name} must satisfy 1 <= min <= max, got {value!r}")
    return (low, high)


@dataclass(frozen=True)
class Domain:
    """Shapes ``(n_rows, n_cols)`` to draw: ``rows`` and ``cols`` as inclusive
    ``(min, max)`` bounds (None: unrestricted), every column count a multiple of
    ``cols_multiple_of``; ``recurring_cols``: row lengths from a palette, for code
    compiled once per shape (``strategies.kernel_shapes``). Validated on construction
    (TypeError/ValueError naming the field)."""

    rows: tuple[int, int] | None = None
    cols: tuple[int, int] | None = None
    cols_multiple_of: int = 1
    recurring_cols: bool = False

    def __post_init__(self) -> None:
        _bounds(self.rows, "rows")
        _bounds(self.cols, "cols")
        k = self.cols_multiple_of
        if isinstance(k, bool) or not isinstance(k, int):
            raise TypeError(f"cols_multiple_of must be a positive int, got {k!r}")
        if k < 1:
            raise ValueError(f"cols_multiple_of must be a positive int, got {k!r}")
        if not isinstance(self.recurring_cols, bool):
            raise TypeError(f"recurring_cols must be a bool, got {self.recurring_cols!r}")
        low, high = self.cols or (1, max(LONG_MAX_COLS, k))
        if -(-low // k) * k > high:
            raise ValueError(
                f"cols_multiple_of={k} has no multiple in cols {low}:{high}: no shape to draw"
            )

    @classmethod
    def parse(
        cls, rows: str | None = None, cols: str | None = None, cols_multiple_of: int | None = None
    ) -> Domain:
        """From the command line's spelling: ``"MIN:MAX"`` (either end may be omitted)."""
        return cls(
            rows=_parse_range(rows, "--rows", 1 << 20),
            cols=_parse_range(cols, "--cols", LONG_MAX_COLS),
            cols_multiple_of=1 if cols_multiple_of is None else cols_multiple_of,
        )

    @property
    def restricted(self) -> bool:
        """Whether any shape is left out by a declaration (``recurring_cols`` aside)."""
        return dataclasses.replace(self, recurring_cols=False) != Domain()

    def recurring(self) -> Domain:
        """This domain with ``recurring_cols``: for a target compiled once per shape."""
        return dataclasses.replace(self, recurring_cols=True)

    def describe(self) -> str:
        """One line for the report header."""
        palette = (
            f"; row lengths from a palette ({_listed(RECURRING_SHORT_COLS)}, the block "
            f"boundaries, {_listed(RECURRING_ARBITRARY_COLS)}): compiled once per length"
            if self.recurring_cols
            else ""
        )
        if not self.restricted:
            every = f"every shape (short rows, and long rows up to {LONG_MAX_COLS} columns)"
            return every + palette
        rows = "any" if self.rows is None else f"{self.rows[0]}..{self.rows[1]}"
        cols = "any" if self.cols is None else f"{self.cols[0]}..{self.cols[1]}"
        multiple = "" if self.cols_multiple_of == 1 else f", multiple of {self.cols_multiple_of}"
        return f"rows {rows}, cols {cols}{multiple} (declared){palette}"


def _listed(lengths: tuple[int, ...]) -> str:
    """``1..9, 16, 18``: sorted lengths, runs of three or more as ``first..last``."""
    runs: list[list[int]] = []
    for n in lengths:
        if runs and n == runs[-1][-1] + 1:
            runs[-1].append(n)
        else:
            runs.append([n])
    return ", ".join(
        f"{run[0]}..{run[-1]}" if len(run) > 2 else ", ".join(map(str, run)) for run in runs
    )


def _parse_range(text: str | None, option: str, open_high: int) -> tuple[int, int] | None:
    """``"MIN:MAX"``, ``"MIN:"`` or ``":MAX"`` as bounds; ``"N"`` alone means ``N:N``.

    An open MAX is ``max(MIN, open_high)``."""
    if text is None:
        return None
    low_text, sep, high_text = text.partition(":")
    try:
        low = int(low_text) if low_text.strip() else 1
        high = int(high_text) if high_text.strip() else (max(low, open_high) if sep else low)
    except ValueError:
        raise ValueError(f"{option} expects MIN:MAX with positive integers, got {text!r}") from None
    if low < 1 or high < low:
        raise ValueError(f"{option} expects 1 <= MIN <= MAX, got {text!r}")
    return (low, high)
