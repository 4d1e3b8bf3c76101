"""A softmax whose forward writes, on the child's channel to the verifier, the header of
a reply (SOFTMAX_VERIFY_TEST_FRAME: "half" announces 1 MiB and sends 3 bytes of it,
"huge" announces 1 TiB, "negative" a negative length) and then sleeps, where the time
limit cannot interrupt it."""

import os
import signal
import struct
import sys
import time

import numpy as np

HEADERS = {
    "half": struct.pack("!i", 1 << 20) + b"\x80\x05\x95",
    "huge": struct.pack("!i", -1) + struct.pack("!Q", 1 << 40),
    "negative": struct.pack("!i", -5),
}


def forward(x):
    channel = int(sys.argv[1])  # the child's command line: CONN_FD FAULT_FD PARENT_PID
    os.write(channel, HEADERS[os.environ["SOFTMAX_VERIFY_TEST_FRAME"]])
    signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGALRM])
    time.sleep(3600)  # HERE
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)
