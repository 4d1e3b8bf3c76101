"""Hypothesis strategies for property-based checks of softmax forward and backward.

Arrays are 2-D, ``(n_rows, n_cols)``, with softmax taken along axis 1 (each row
is one distribution). float32 and float64 are supported (``DTYPES``), and half
precision (``HALF_DTYPES``: float16, and bfloat16 with the ml_dtypes extra);
every generated value is finite (but the ``-inf`` entries of ``masked_logits``),
and every generated array is C-contiguous, owns its data and has exactly the
requested dtype.

* ``shapes`` -- ``(n_rows, n_cols)`` shapes, favouring edge cases.
* ``kernel_shapes`` -- those, and long rows (up to 8192 columns) weighted to
  block boundaries (``BOUNDARY_COLS``), inside a declared domain; with
  ``recurring_cols=True``, row lengths from a palette (``RECURRING_SHORT_COLS``,
  ``RECURRING_ARBITRARY_COLS``), for code compiled once per shape.
* ``shapes_in`` -- ``kernel_shapes`` inside a declared ``softmax_verify.Domain``;
  ``largest_shape_in`` -- a shape with as many entries as the largest it draws.
* ``masked_logits`` -- logits with ``-inf`` (masked) entries, for ``--masked``.
* ``logits`` -- adversarial logits: ties, constant rows, dominant entries,
  masked entries, rows far apart, magnitudes near overflow and underflow.
* ``well_conditioned_logits`` -- bounded spread and magnitude, for
  finite-difference gradient checks.
* ``upstreams`` -- upstream gradients for a backward pass.
* ``directions`` -- O(1) perturbation directions for directional derivatives.
* ``shifts`` -- per-row additive shifts, for the shift-invariance property.
* ``permutations`` -- index permutations, for the permutation-equivariance property.
* ``labels`` -- labels of cross-entropy checks in each form (``LABEL_FORMS``):
  ``class_labels`` (int64 indices), one-hot rows (``one_hot``), ``probability_labels``
  (dyadic rows summing to exactly 1).

Every function validates its arguments when called, raising ``TypeError`` for
a wrong type and ``hypothesis.errors.InvalidArgument`` for a bad value.
"""

from ._labels import LABEL_FORMS, class_labels, labels, one_hot, probability_labels
from ._logits import logits, well_conditioned_logits
from ._masked import masked_logits
from ._shapes import (
    BOUNDARY_COLS,
    LONG_MAX_COLS,
    RECURRING_ARBITRARY_COLS,
    RECURRING_SHORT_COLS,
    kernel_shapes,
    largest_shape_in,
    shapes,
    shapes_in,
)
from ._upstreams import directions, permutations, shifts, upstreams
from ._validation import DTYPES, HALF_DTYPES

__all__ = [
    "BOUNDARY_COLS",
    "DTYPES",
    "HALF_DTYPES",
    "LABEL_FORMS",
    "LONG_MAX_COLS",
    "RECURRING_ARBITRARY_COLS",
    "RECURRING_SHORT_COLS",
    "class_labels",
    "directions",
    "kernel_shapes",
    "labels",
    "largest_shape_in",
    "logits",
    "masked_logits",
    "one_hot",
    "permutations",
    "probability_labels",
    "shapes",
    "shapes_in",
    "shifts",
    "upstreams",
    "well_conditioned_logits",
]
