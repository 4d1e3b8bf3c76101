"""Reading and calling the code under test.

``load`` resolves a TARGET string; ``conventions`` reads the shapes code is written in
(functions, layer classes, elementwise or Jacobian gradients, other layouts);
``autodiff``, ``frameworks`` and ``jax_buckets`` read framework code; ``local`` is the
in-process implementation, each call through ``sandbox`` (copies, time limits, error
locations). The same code runs in the verifier (``verify()``, ``--no-isolate``) and in
the child process of ``softmax-verify check``.
"""
