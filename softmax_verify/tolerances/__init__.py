r"""Error bounds that every tolerance in softmax-verify is computed from.

Notation (per row of length :math:`D`): :math:`u` is the unit roundoff of the
dtype under test (``eps / 2``: 2**-24 for float32, 2**-53 for float64),
:math:`\gamma_n = nu / (1 - nu)` (Higham's constant for n roundings),
:math:`\lambda` the dtype's smallest normal number, :math:`t_i = \max_j x_j - x_i`.
Exact values are computed in float64 by the reference; where the dtype under
test is float64 too, the reference's own bound is added (``reference_*``).

Assumed of any correct implementation (the *budget*; docs/tolerances.md has the
full derivation):

- ``exp`` within 2 ulps (relative error 4u), subtraction ``x_i - m`` rounded
  once (absolute error :math:`t_i u` in the exponent), a row sum of D terms in
  any order (:math:`\gamma_{D-1}`), a division or reciprocal-and-multiply (2u)
  and the final rounding to the output dtype (u).

Then each computed probability satisfies
:math:`|\hat y_i - y_i| \le \eta_i y_i + \lambda` with
:math:`\eta_i = \gamma_{D + 10 + \ln D + t_i}`: 4u (exp) + :math:`t_i u`
(shift) + the row sum's relative error :math:`\gamma_{D-1} + 4u + u \ln D`
(the :math:`\ln D` because :math:`\sum_j y_j t_j \le H(y) \le \ln D`) + 2u
(division) + u (output), rounded up. Everything else follows from this one
bound.

Half precision (float16, bfloat16; docs/tolerances.md, "Half precision") follows an
*accumulation model* (``ACCUMULATIONS``), passed explicitly: every function whose result
depends on it takes it as ``accumulate`` (a keyword argument, ``"float32"`` by default;
``chain``, ``_model`` and ``_tiny`` require it). A run's model is ``Options.accumulate``,
which the run plan hands to each invariant's check, which hands it to each tolerance and
gradient check it calls:

- ``"float32"`` (the default): every step above runs in float32 or wider, on inputs
  that convert exactly, and only the result is rounded, once, to the half dtype:
  :math:`\eta_i = u_h + (1 + u_h)\gamma^{(32)}_{D + 10 + \ln D + t_i}`, with
  :math:`u_h` the half dtype's unit roundoff and :math:`\gamma^{(32)}` float32's. Any
  chain of n roundings becomes ``chain(n)`` :math:`= u_h + (1 + u_h)\gamma^{(32)}_n`,
  and :math:`\lambda` becomes :math:`\lambda_{32} + \sigma_h` (``_tiny``).
- ``"input"``: everything in the half dtype itself, with independent rounding errors of
  mean zero (Higham and Mary's probabilistic model, ``_probabilistic``): the roundings of
  each row sum and inner product of D terms are bounded by :math:`\tilde\gamma_D =
  \min(\gamma_D, e^{c\sqrt D u_h + D u_h^2/(1 - u_h)} - 1)`, c = 10, which every term of a
  ci run's sums meets at once with probability above :math:`1 - 5 \cdot 10^{-13}`; the
  other roundings worst case (``chain``'s ``terms``, ``sum_relative_error``); subnormals kept
  (:math:`\lambda` is :math:`\sigma_h`). Vacuous at float16 from D of about 6000 on.
- ``"input-worst-case"``: everything in the half dtype itself, worst case: the model above
  with :math:`u = u_h` and its :math:`\lambda` (flushes allowed). Where :math:`(D + 10 +
  \ln D + t_i) u \ge 1/2` the bound is vacuous and says so (``VACUOUS``): at float16 from D
  of about 1000 on, at bfloat16 from about 120.

For float32 and float64 both models are the one above (the accumulation dtype is the
input dtype).

The modules, one concern each (this package re-exports their public names,
and, with ``as`` because the gradient checks and tests import them from here, the private
``_backward_bound``, ``_eta_times`` and ``_model``):

- ``_rounding``: :math:`u`, :math:`\gamma_n`, the accumulation model (``chain``), the
  underflow allowance :math:`\lambda`, a check's own float64 dot products;
- ``_probabilistic``: Higham and Mary's :math:`\tilde\gamma_n` and the chance of a false
  alarm under the ``"input"`` model;
- ``_forward``: :math:`\eta_i`, the forward's bound, the row sum and the unit interval;
- ``_backward``: the softmax VJP's bound :math:`\tau` and a staged backward's stages;
- ``_log_softmax``: log_softmax's forward and VJP bounds and its whole-row checks;
- ``_log_directional``: log_softmax's gradient check along random directions;
- ``_cross_entropy``: softmax cross-entropy's loss and gradient bounds (a row's, a reduced
  loss's) and the whole-loss checks sized from them;
- ``_perturbation``: how an exact output moves when a check rounds its own input;
- ``_differences``: finite-difference steps and the gradient checks' tolerances;
- ``_diagnosis``: the diagnoses' formula matching.
"""

from __future__ import annotations

from softmax_verify.tolerances._backward import _backward_bound as _backward_bound
from softmax_verify.tolerances._backward import (
    backward_error_bound,
    reference_backward_bound,
    stage_bound,
)
from softmax_verify.tolerances._cross_entropy import (
    cross_entropy_alone_bound,
    cross_entropy_backward_bound,
    cross_entropy_batch_bound,
    cross_entropy_difference_step,
    cross_entropy_loss_bound,
    cross_entropy_nonnegative_slack,
    cross_entropy_row_bound,
    cross_entropy_row_sum_bound,
    cross_entropy_shift_perturbation,
    reference_cross_entropy_backward_bound,
    reference_cross_entropy_loss_bound,
)
from softmax_verify.tolerances._diagnosis import (
    formula_bound,
    log_output_error,
)
from softmax_verify.tolerances._differences import (
    LOG_SOFTMAX_SECOND,
    LOG_SOFTMAX_THIRD,
    LOGISTIC_SECOND,
    LOGISTIC_THIRD,
    central_difference_step,
    difference_rounding,
    difference_truncation,
    directional_bound,
    jacobian_backward_bound,
    jacobian_difference_bound,
    log_softmax_vjp_difference_bound,
    projected_difference_bound,
    vjp_difference_bound,
)
from softmax_verify.tolerances._forward import _eta_times as _eta_times
from softmax_verify.tolerances._forward import (
    forward_error_bound,
    forward_relative_bound,
    reference_forward_bound,
    row_sum_bound,
    sum_relative_error,
    unit_interval_slack,
)
from softmax_verify.tolerances._log_directional import (
    log_softmax_directional_bound,
    log_softmax_weight_error,
)
from softmax_verify.tolerances._log_softmax import (
    log_probability_slack,
    log_softmax_backward_bound,
    log_softmax_error_bound,
    logsumexp_bound,
    reference_log_softmax_backward_bound,
    reference_log_softmax_bound,
)
from softmax_verify.tolerances._perturbation import (
    combination_rounding,
    log_softmax_perturbation,
    log_softmax_vjp_perturbation,
    softmax_perturbation,
    softmax_vjp_perturbation,
)
from softmax_verify.tolerances._rounding import (
    ACCUMULATIONS,
    VACUOUS,
    chain,
    describe_accumulation,
    dot_rounding,
    gamma,
    is_probabilistic,
    unit_roundoff,
)
from softmax_verify.tolerances._rounding import _model as _model

__all__ = [
    "ACCUMULATIONS",
    "LOGISTIC_SECOND",
    "LOGISTIC_THIRD",
    "LOG_SOFTMAX_SECOND",
    "LOG_SOFTMAX_THIRD",
    "VACUOUS",
    "backward_error_bound",
    "central_difference_step",
    "chain",
    "combination_rounding",
    "cross_entropy_alone_bound",
    "cross_entropy_backward_bound",
    "cross_entropy_batch_bound",
    "cross_entropy_difference_step",
    "cross_entropy_loss_bound",
    "cross_entropy_nonnegative_slack",
    "cross_entropy_row_bound",
    "cross_entropy_row_sum_bound",
    "cross_entropy_shift_perturbation",
    "describe_accumulation",
    "difference_rounding",
    "difference_truncation",
    "directional_bound",
    "dot_rounding",
    "formula_bound",
    "forward_error_bound",
    "forward_relative_bound",
    "gamma",
    "is_probabilistic",
    "jacobian_backward_bound",
    "jacobian_difference_bound",
    "log_output_error",
    "log_probability_slack",
    "log_softmax_backward_bound",
    "log_softmax_directional_bound",
    "log_softmax_error_bound",
    "log_softmax_perturbation",
    "log_softmax_vjp_difference_bound",
    "log_softmax_vjp_perturbation",
    "log_softmax_weight_error",
    "logsumexp_bound",
    "projected_difference_bound",
    "reference_backward_bound",
    "reference_cross_entropy_backward_bound",
    "reference_cross_entropy_loss_bound",
    "reference_forward_bound",
    "reference_log_softmax_backward_bound",
    "reference_log_softmax_bound",
    "row_sum_bound",
    "softmax_perturbation",
    "softmax_vjp_perturbation",
    "stage_bound",
    "sum_relative_error",
    "unit_interval_slack",
    "unit_roundoff",
    "vjp_difference_bound",
]
