"""Background tasks of a long-running component, stopped together."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable


async def cancel_all(tasks: Iterable[asyncio.Task[object]]) -> None:
    """Cancel every task, then wait for each to finish its cancellation."""
    found = list(tasks)
    for task in found:
        task.cancel()
    for task in found:
        with contextlib.suppress(asyncio.CancelledError):
            await task
