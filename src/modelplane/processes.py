"""Process helpers every long-running component shares: child processes on this machine
(replicas started by ``modelplane up``, engines started by a runtime, a Prometheus beside), which
must not outlive their parent and listen on a loopback port of their own; and background tasks,
stopped together."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import signal
import socket
import subprocess
from collections.abc import Iterable
from typing import Any

PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent() -> None:
    """In the child before exec: SIGKILL it when its parent dies, so that no replica outlives
    ``modelplane up`` (a restarted ``up`` starts fresh ones) and no engine outlives its runtime."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def stop_process(process: subprocess.Popen[Any], grace: float = 30.0) -> None:
    """SIGTERM, and SIGKILL if it is still there after ``grace`` seconds (one gone already is
    left as it is)."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def cancel_all(tasks: Iterable[asyncio.Task[object]]) -> None:
    """Cancel every task, then wait for each to finish its cancellation."""
    found = list(tasks)
    for task in found:
        task.cancel()
    for task in found:
        with contextlib.suppress(asyncio.CancelledError):
            await task
