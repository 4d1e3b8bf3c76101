# For type checkers only, and never read by Python: the strategies' source is the
# top-level strategies/ folder, installed as softmax_verify.strategies by pyproject.toml's
# package-dir (and mapped so by the editable install), which a type checker cannot
# follow from a checkout. It type-checks that folder as the module `strategies`.
from strategies import *  # noqa: F403  # the whole public API, re-exported
from strategies import __all__ as __all__
