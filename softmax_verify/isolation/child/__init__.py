"""The child process of ``softmax-verify check``: it loads the target and serves its calls
(``main``: the loop; ``serve``: each request; ``transport``: the channel, bound before
the target is imported). It imports only what loading and calling the target need:
``target``, ``core`` and the ``linux`` module of ``isolation`` (never Hypothesis, the
invariants or the engine)."""
