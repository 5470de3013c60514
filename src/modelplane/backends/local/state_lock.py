"""Who is using a state directory: ``modelplane up`` holds its lock for as long as it runs, and
``modelplane restore`` (or a backup read from the directory) takes it too, so that neither
changes or reads files under a platform that is writing them.

An ``flock`` on ``<state-dir>/up.lock``: the kernel lets it go when its holder exits, however it
exits, so a platform that was killed leaves no stale lock behind. The file names the holder's
pid, for the message.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType

from modelplane.errors import StateError

LOCK_FILE = "up.lock"


class StateLock:
    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self._fd: int | None = None

    def __enter__(self) -> StateLock:
        self.acquire()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.release()

    def acquire(self) -> None:
        """Take the lock, or StateError naming the process that holds it."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.state_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise StateError(
                f"{self.state_dir} is in use by a running modelplane up (pid {holder})"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # lets the lock go; the file stays (removing it would race)
            self._fd = None
