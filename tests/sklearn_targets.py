"""scikit-learn's softmax as its users call it: with copy=False it works in place."""

from __future__ import annotations

import functools

from sklearn.utils import extmath

#: sklearn.utils.extmath.softmax(X, copy=False): the result is written into X.
softmax_in_place = functools.partial(extmath.softmax, copy=False)
