"""The kernels shipped for users: the threaded reference softmax, log_softmax and their
derivatives (``reference``), and the notebook's staged graph written correctly
(``staged``). The verifier's own float64 oracles are ``core.oracle``, not these."""
