"""What the runtime's HTTP adapters receive alike: a request body within the model's
``runtime.maxRequestBytes``, and word of a client that left before its answer.

Both adapters read bodies here, on plain ASGI ``receive`` callables (the v2 ``infer`` hot path has
no Starlette request), so a body over the limit is refused the same way on every path: at once
when ``Content-Length`` declares it, else as soon as the bytes that arrived pass the limit.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import TypeVar

from starlette.types import Message, Receive, Scope

from modelplane.errors import ClientGoneError, PayloadTooLargeError

T = TypeVar("T")
_CONTENT_LENGTH = b"content-length"


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The request's whole body; :class:`PayloadTooLargeError` past ``limit`` bytes,
    :class:`ClientGoneError` if the client leaves while sending it."""
    declared = _declared_length(scope)
    if declared is not None and declared > limit:
        raise PayloadTooLargeError(
            f"request body of {declared} bytes exceeds this model's limit of {limit} bytes"
        )
    chunks: list[bytes] = []
    size = 0
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGoneError
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(f"request body exceeds this model's limit of {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _declared_length(scope: Scope) -> int | None:
    for key, value in scope["headers"]:
        if key == _CONTENT_LENGTH:
            return int(value) if value.isdigit() else None
    return None


async def until_gone(receive: Receive, work: Awaitable[T]) -> T:
    """Await ``work`` unless the client disconnects first, which cancels it and raises
    :class:`ClientGoneError`. Only once the body has been read: it listens on ``receive``."""
    task = asyncio.ensure_future(work)
    gone = asyncio.ensure_future(_disconnected(receive))
    try:
        await asyncio.wait({task, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
    if not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        raise ClientGoneError
    return task.result()


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
