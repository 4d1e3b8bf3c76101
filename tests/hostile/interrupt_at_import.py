"""A softmax whose module raises KeyboardInterrupt while it is imported (a notebook cell
exported with the interrupt that stopped it)."""

import numpy as np


def forward(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


raise KeyboardInterrupt("stopped by the user")  # HERE
