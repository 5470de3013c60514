"""How a long download is going, said in the log every few seconds: bytes, rate, time left."""

from __future__ import annotations

import logging
import threading
import time
from types import TracebackType

from modelplane.artifacts.sizes import format_size

log = logging.getLogger("modelplane.artifacts")
EVERY_SECONDS = 5.0


class Progress:
    """Bytes of ``total`` received, added to from any thread; logged while it runs."""

    def __init__(self, what: str, total: int, every: float = EVERY_SECONDS) -> None:
        self.what, self.total, self.every = what, total, every
        self.received = 0
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._started = time.monotonic()
        self._reporter = threading.Thread(target=self._report, name="progress", daemon=True)

    def add(self, count: int) -> None:
        with self._lock:
            self.received += count

    def __enter__(self) -> Progress:
        self._started = time.monotonic()
        self._reporter.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._done.set()
        self._reporter.join()
        if kind is None and self.total:
            elapsed = max(time.monotonic() - self._started, 1e-6)
            log.info(
                "fetched %s of %s in %.1f s (%s/s)", format_size(self.received), self.what,
                elapsed, format_size(int(self.received / elapsed)),
            )  # fmt: skip

    def line(self) -> str:
        """Where the download stands, for the log."""
        elapsed = max(time.monotonic() - self._started, 1e-6)
        rate = self.received / elapsed
        left = (self.total - self.received) / rate if rate > 0 else float("inf")
        eta = f"about {left:.0f} s left" if left != float("inf") else "waiting for the store"
        return (
            f"fetching {self.what}: {format_size(self.received)} of {format_size(self.total)} "
            f"({format_size(int(rate))}/s, {eta})"
        )

    def _report(self) -> None:
        while not self._done.wait(self.every):
            log.info("%s", self.line())
