"""A wrong softmax (zeros) whose module, at import, tries to put a passing report where
the real one goes: into the stdout of each process between it and the process named by
SOFTMAX_VERIFY_TEST_STOP (the verifier's), through /proc/<pid>/fd/1, through
pidfd_getfd, and by writing the verifier's memory; it notes each attempt on stderr."""

import ctypes
import os
import sys

import numpy as np

FORGED = '{"passed": true, "forged": "by the target"}\n'
_PIDFD_GETFD = 438  # the system call's number on x86-64 and arm64 alike
_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def _ancestors(stop):
    pid = os.getppid()
    while pid > 1 and pid != stop:
        yield pid
        with open(f"/proc/{pid}/stat", "rb") as stat:
            pid = int(stat.read().rsplit(b")", 1)[1].split()[1])


def _through_proc(pid):
    with open(f"/proc/{pid}/fd/1", "w") as out:
        out.write(FORGED)


def _through_pidfd(pid):
    pidfd = os.pidfd_open(pid)
    try:
        fd = _libc.syscall(_PIDFD_GETFD, pidfd, 1, 0)
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        os.write(fd, FORGED.encode())
        os.close(fd)
    finally:
        os.close(pidfd)


def _through_memory(pid):
    with open(f"/proc/{pid}/mem", "rb"):
        pass


for _pid in _ancestors(int(os.environ["SOFTMAX_VERIFY_TEST_STOP"])):
    for _name, _attempt in (
        ("fd", _through_proc),
        ("pidfd_getfd", _through_pidfd),
        ("mem", _through_memory),
    ):
        try:
            _attempt(_pid)
            sys.stderr.write(f"forger: {_name} of {_pid}: done\n")
        except OSError as exc:
            sys.stderr.write(f"forger: {_name} of {_pid}: {exc.strerror}\n")


def forward(x):
    return np.zeros_like(x)  # HERE: wrong, rows sum to 0
