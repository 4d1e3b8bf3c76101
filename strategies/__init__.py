"""Hypothesis strategies for property-based checks of softmax forward and backward.

Arrays are 2-D, ``(n_rows, n_cols)``, with softmax taken along axis 1 (each row
is one distribution). Only float32 and float64 are supported (``DTYPES``);
every generated value is finite (but the ``-inf`` entries of ``masked_logits``),
and every generated array is C-contiguous, owns its data and has exactly the
requested dtype.

* ``shapes`` -- ``(n_rows, n_cols)`` shapes, favouring edge cases.
* ``logits`` -- adversarial logits: ties, constant rows, dominant entries,
  masked entries, rows far apart, magnitudes near overflow and underflow.
* ``well_conditioned_logits`` -- bounded spread and magnitude, for
  finite-difference gradient checks.
* ``upstreams`` -- upstream gradients for a backward pass.
* ``directions`` -- O(1) perturbation directions for directional derivatives.
* ``shifts`` -- per-row additive shifts, for the shift-invariance property.
* ``permutations`` -- index permutations, for the permutation-equivariance property.
* ``masked_logits`` -- logits with ``-inf`` (masked) entries, for ``--masked``.

Every function validates its arguments when called, raising ``TypeError`` for
a wrong type and ``hypothesis.errors.InvalidArgument`` for a bad value.
"""

from strategies._logits import logits, well_conditioned_logits
from strategies._masked import masked_logits
from strategies._shapes import shapes
from strategies._upstreams import directions, permutations, shifts, upstreams
from strategies._validation import DTYPES

__all__ = [
    "DTYPES",
    "directions",
    "logits",
    "masked_logits",
    "permutations",
    "shapes",
    "shifts",
    "upstreams",
    "well_conditioned_logits",
]
