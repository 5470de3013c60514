"""How the gateway reads bodies and writes answers on raw ASGI: each protocol's error shape
(``{"error": "..."}`` on v2, the OpenAI API's error object on ``/v1``), refusals with their
headers, and a streamed body relayed as it comes.

The proxy and the gateway's own routes both answer through here, so one request path never
mixes shapes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.types import Message, Receive, Scope, Send

from modelplane.errors import AuthError, UnauthenticatedError
from modelplane.gateway import paths

JSON = b"application/json"
CHALLENGE = 'Bearer realm="modelplane"'


class RefusalError(Exception):
    """A request the gateway answers itself, with this status and message."""

    def __init__(
        self, status: int, message: str, retry_after: int | None = None, revision: str = "-"
    ) -> None:
        super().__init__(message)
        self.status, self.retry_after, self.revision = status, retry_after, revision


async def reply(
    send: Send,
    status: int,
    content: bytes,
    content_type: bytes = JSON,
    headers: dict[str, str] | None = None,
) -> None:
    raw = [(b"content-length", str(len(content)).encode())]
    if headers:
        raw += [(k.lower().encode(), v.encode("latin-1")) for k, v in headers.items()]
    if not headers or "Content-Type" not in headers:
        raw.append((b"content-type", content_type))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": content})


def error(message: str) -> bytes:
    return orjson.dumps({"error": message})


_OPENAI_TYPES = {
    401: "authentication_error",
    403: "permission_error",
    429: "rate_limit_exceeded",
    400: "invalid_request_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
}


def openai_error(message: str, status: int, param: str | None = None) -> bytes:
    """The OpenAI API's error object, which its clients raise as their own exceptions."""
    kind = _OPENAI_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    code = "model_not_found" if status == 404 else None
    return orjson.dumps({"error": {"message": message, "type": kind, "param": param, "code": code}})


def error_for(path: str, message: str, status: int) -> bytes:
    """An error in the shape of the protocol that ``path`` belongs to."""
    return openai_error(message, status) if path.startswith("/v1/") else error(message)


async def refuse(send: Send, exc: AuthError, openai: bool) -> None:
    """401 (with the challenge) or 403, in the shape the client's protocol expects."""
    status = 401 if isinstance(exc, UnauthenticatedError) else 403
    body = openai_error(str(exc), status) if openai else error(str(exc))
    challenge = {"www-authenticate": CHALLENGE} if status == 401 else None
    await reply(send, status, body, headers=challenge)


def refusal(refused: RefusalError, target: paths.ModelPath) -> tuple[int, bytes, dict[str, str]]:
    status = refused.status
    if target.action == paths.OPENAI:
        content = openai_error(str(refused), status, "model" if status == 404 else None)
    else:
        content = error(str(refused))
    headers = {"Content-Type": "application/json"}
    if refused.retry_after is not None:
        headers["Retry-After"] = str(refused.retry_after)
    return status, content, headers


def header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


async def read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            raise RefusalError(499, "client disconnected")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise RefusalError(413, f"request body exceeds the gateway's limit of {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def relay_body(chunks: AsyncIterator[bytes], gone: asyncio.Future[None], send: Send) -> bool:
    """Pass a streamed body on as it arrives; False if the client left before its end."""
    pending = aiter(chunks)
    while True:
        chunk: asyncio.Future[bytes | None] = asyncio.ensure_future(anext(pending, None))
        either: set[asyncio.Future[Any]] = {chunk, gone}
        await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        if not chunk.done():
            chunk.cancel()
            return False
        data = chunk.result()
        if data is None:
            await send({"type": "http.response.body", "body": b""})
            return True
        await send({"type": "http.response.body", "body": data, "more_body": True})


async def disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
