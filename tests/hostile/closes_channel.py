"""A softmax whose module, at import, closes the child's channel to the verifier (its
descriptor is the child's first argument) and lives on for a minute; it first writes
"closed" into the file SOFTMAX_VERIFY_TEST_PIDS names."""

import os
import sys
import time

import numpy as np

os.close(int(sys.argv[1]))
with open(os.environ["SOFTMAX_VERIFY_TEST_PIDS"], "w") as note:
    note.write("closed\n")
time.sleep(60)


def forward(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)
