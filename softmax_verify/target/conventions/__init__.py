"""The shapes softmax code is written in, read into the pair the invariants use.

``read(target, backward, options)`` returns ``forward(x) -> (y, cache)`` and
``backward(dout, cache) -> dx`` on (N, D) arrays with softmax along the last
axis, and the ``Reading`` that every report states. Conventions:

- functions: ``forward(x) -> y | (y, cache)``, ``backward(dout, cache) -> dx``;
- layers: a class (a fresh instance per forward call) or an instance (a deep copy
  per forward call) with ``forward``/``forward_pass``/``fprop``/``__call__`` and
  ``backward``/``backward_pass``/``bprop``/``backwards``, returning their result or
  storing it on the object (``self.output``, ``self.dinputs``, ...);
- an elementwise derivative (``gradient``, ``derivative``, or ``--grad elementwise``):
  ``dx = dout * g(x or y)``; a Jacobian function: ``dx = J^T dout`` per row;
- ``rowwise``: code for one 1-D row; ``axis``/``rank``: other layouts (``_layout``).

The ``cross_entropy`` kind's code (a loss of logits and labels, and its gradient) is read
by ``loss_implementation_from`` into the calls of ``core.loss_implementation``: loss
functions returning the loss or ``(loss, dx)``, a loss and a gradient function, and loss
layers with the backward shapes of ``_loss_read``.
"""

from softmax_verify.core.options import GRAD_AT, GRADS, ReadOptions
from softmax_verify.target.conventions._adapt import implementation_from, is_layer, read
from softmax_verify.target.conventions._loss_code import LossCode
from softmax_verify.target.conventions._loss_read import is_loss_layer, read_loss
from softmax_verify.target.conventions._loss_reader import LossReader, loss_implementation_from
from softmax_verify.target.conventions._options import Reading
from softmax_verify.target.conventions._signatures import (
    ConventionError,
    did_you_mean,
    required_names,
)

__all__ = [
    "GRADS",
    "GRAD_AT",
    "ConventionError",
    "LossCode",
    "LossReader",
    "ReadOptions",
    "Reading",
    "did_you_mean",
    "implementation_from",
    "is_layer",
    "is_loss_layer",
    "loss_implementation_from",
    "read",
    "read_loss",
    "required_names",
]
