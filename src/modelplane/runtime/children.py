"""Child processes on this machine: replicas started by ``modelplane up``, engines started by a
runtime. A child must not outlive its parent, and listens on a loopback port of its own."""

from __future__ import annotations

import ctypes
import signal
import socket

PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent() -> None:
    """In the child before exec: SIGKILL it when its parent dies, so that no replica outlives
    ``modelplane up`` (a restarted ``up`` starts fresh ones) and no engine outlives its runtime."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
