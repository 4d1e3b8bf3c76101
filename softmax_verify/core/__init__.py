"""The trusted core: the values and the math a verdict rests on.

The float64 oracles (``oracle``), the comparator (``compare``), dtypes and their
constants, kinds, errors, argument validation, the options of a run (``options``),
the shapes drawn (``domain``), the result of one check (``result``) and the protocol
every implementation under test is called through (``implementation``). A reader
trusts a verdict by reading this package, ``tolerances`` and ``invariants``.

It imports nothing else of softmax_verify (an import contract in pyproject.toml), and
nothing but numpy and the standard library: the child process that runs the code
under test imports from it too.
"""
