r"""Gradient checks that are exhaustive and cheap, by using softmax's structure.

- ``full_jacobian_check``: every entry of every row's D x D Jacobian by central
  differences of 2D perturbed copies of x (column j of every row perturbed at once:
  rows are independent), against the analytic Jacobian from the D basis upstreams;
  the copies and the upstreams go to the forward and backward in a few stacked
  calls. ``torch.autograd.gradcheck`` needs 2ND forward calls.
- ``directional_check``: two forward calls per direction. Because J is
  symmetric, :math:`J u` from two forward calls equals ``backward(u)`` entry by
  entry, so a zero, scaled or diagonal-only backward is caught at any size
  (a single scalar :math:`\langle w, J u\rangle` would average such errors away).
- ``log_softmax_directional_check``: the same for a log_softmax, whose Jacobian
  :math:`J = I - \mathbf 1 y^\top` is not symmetric but :math:`\operatorname{diag}(y) J`
  is: ``backward(y * u)`` against y times :math:`J u` from two forward calls, entry by entry.
- ``numerical_vjp_check``: the VJP :math:`J^\top g` by central differences,
  entry by entry (the ``central_differences`` invariant).

Step sizes are powers of two near ``tolerances.central_difference_step`` (about
the cube root of the unit roundoff), the same for every logit whatever its
magnitude: softmax is shift-invariant, so neither the truncation error (its
derivatives are bounded independently of x) nor the forward's rounding error
grows with ``|x|``, and a step scaled by ``|x|`` would only loosen the tolerance
(at ``|x| = 1000`` in float32 so far that a doubled backward passed). Logits
whose ulp exceeds the step are rejected (ValueError): no informative finite
difference exists there. The steps actually taken are measured and used.
Tolerances per entry (``softmax_verify.tolerances``, ``difference_*``,
``vjp_difference_bound``, ``jacobian_*``, ``directional_bound``): truncation (the third
derivative of softmax along a coordinate is at most 1/8, that of the logistic function)
+ rounding (the forward bound at both points, divided by the step) + the float64
arithmetic of the estimate itself + the backward's own bound. Every comparison is with
the float64 oracle (``softmax_verify.core.oracle``).

Modules: ``_vjp`` (numerical_vjp_check), ``_full`` (full_jacobian_check),
``_directional`` (directional_check), ``_log_directional`` (log_softmax_directional_check),
``_directions`` (its points and calls),
``_finite_differences`` (steps and stacked column differences), ``_scratch`` (calls that
hand the checks' scratch arrays over), ``_tally`` (worst-entry accumulation, the result).
"""

from softmax_verify.gradcheck._directional import directional_check
from softmax_verify.gradcheck._full import full_jacobian_check
from softmax_verify.gradcheck._log_directional import log_softmax_directional_check
from softmax_verify.gradcheck._tally import GradcheckResult
from softmax_verify.gradcheck._vjp import numerical_vjp_check

__all__ = [
    "GradcheckResult",
    "directional_check",
    "full_jacobian_check",
    "log_softmax_directional_check",
    "numerical_vjp_check",
]
