"""How the gateway reads bodies and writes answers on raw ASGI: each protocol's error shape
(``{"error": "..."}`` on v2, the OpenAI API's error object on ``/v1``), and a streamed body
relayed as it comes.

Refusals are domain errors (``modelplane.errors``) until here: ``STATUS`` is the gateway's one
table from an error to its HTTP status, and ``refusal`` the one place that makes the answer
(with ``WWW-Authenticate`` for 401 and ``Retry-After`` for an error that says when to retry).
The proxy and the gateway's own routes both answer through here, so one request path never
mixes shapes.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.types import Message, Receive, Scope, Send

from modelplane.errors import (
    ClientGoneError,
    EngineBusyError,
    ForbiddenError,
    InvalidRequestError,
    ModelNotFoundError,
    ModelNotReadyError,
    ModelplaneError,
    PayloadTooLargeError,
    QuotaExceededError,
    ReplicaFailedError,
    UnauthenticatedError,
)

JSON = b"application/json"
CHALLENGE = 'Bearer realm="modelplane"'


# The first match counts: subclasses before their bases.
STATUS: tuple[tuple[type[ModelplaneError], int], ...] = (
    (UnauthenticatedError, 401),
    (ForbiddenError, 403),
    (PayloadTooLargeError, 413),
    (InvalidRequestError, 400),
    (ModelNotFoundError, 404),
    (QuotaExceededError, 429),
    (EngineBusyError, 429),  # the waiting room of a saturated model refused it
    (ClientGoneError, 499),  # nginx's: the client closed the request
    (ReplicaFailedError, 502),
    (ModelNotReadyError, 503),
)
UNEXPECTED = 502  # anything else: the gateway failed, not the model


def status_of(error: Exception) -> int:
    return next((status for kind, status in STATUS if isinstance(error, kind)), UNEXPECTED)


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


def error_shape(message: str) -> bytes:
    """The v2 error body."""
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
    return openai_error(message, status) if path.startswith("/v1/") else error_shape(message)


def refusal(error: Exception, openai: bool) -> tuple[int, bytes, dict[str, str]]:
    """The answer to a refused request: status, body in the client's protocol, headers."""
    status = status_of(error)
    message = str(error) if isinstance(error, ModelplaneError) else f"gateway error: {error!r}"
    if openai:
        param = error.param if isinstance(error, InvalidRequestError) else None
        content = openai_error(message, status, "model" if status == 404 else param)
    else:
        content = error_shape(message)
    headers = {"Content-Type": "application/json"}
    if status == 401:
        headers["WWW-Authenticate"] = CHALLENGE
    retry_after = error.retry_after if isinstance(error, ModelplaneError) else None
    if retry_after is not None and status in (429, 503):
        headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
    return status, content, headers


async def refuse(send: Send, error: Exception, openai: bool) -> None:
    status, content, headers = refusal(error, openai)
    await reply(send, status, content, headers=headers)


def header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The request's whole body; past ``limit`` bytes refused at once when ``Content-Length``
    declares it (so a client that expects ``100 Continue`` is not asked for a body in vain), else
    as soon as the bytes that arrived pass it."""
    declared = header(scope, b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLargeError(
            f"request body of {declared} bytes exceeds the gateway's limit of {limit} bytes"
        )
    chunks: list[bytes] = []
    size = 0
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGoneError("client disconnected")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(f"request body exceeds the gateway's limit of {limit} bytes")
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
