"""A work queue of object keys, as Kubernetes controllers keep one: a key waits at most once,
is never handled by two workers at once, and comes back if it changed while being handled."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


class WorkQueue:
    def __init__(self) -> None:
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._dirty: set[str] = set()
        self._processing: set[str] = set()

    def add(self, key: str) -> None:
        if key in self._dirty:
            return
        self._dirty.add(key)
        if key not in self._processing:
            self._queue.put_nowait(key)

    def __len__(self) -> int:
        return len(self._dirty)

    async def work(self, handle: Callable[[str], Awaitable[None]]) -> None:
        """Handle keys forever, one at a time: run several of these for parallel workers."""
        while True:
            key = await self._queue.get()
            self._dirty.discard(key)
            self._processing.add(key)
            try:
                await handle(key)
            finally:
                self._processing.discard(key)
                if key in self._dirty:  # changed meanwhile: once more
                    self._queue.put_nowait(key)
