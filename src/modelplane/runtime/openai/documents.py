"""The OpenAI API's replies, as the official client reads them: whole answers, stream chunks as
server-sent events, embeddings, and the error object.

Errors take the API's shape, ``{"error": {"message", "type", "param", "code"}}``, with the status
every runtime adapter gives them (``runtime/replies.py``); an error after a stream has begun is
sent as an event carrying that object, then the stream ends.
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any

import numpy as np
import orjson
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from modelplane.errors import InferenceError, InvalidRequestError
from modelplane.runtime.generation import Completion
from modelplane.runtime.replies import json_response, retry_headers, status_of
from modelplane.runtime.types import Embeddings

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}

# The API's error type and code for each status.
_KINDS: dict[int, tuple[str, str | None]] = {
    413: ("invalid_request_error", "request_too_large"),
    400: ("invalid_request_error", None),
    404: ("invalid_request_error", "model_not_found"),
    429: ("rate_limit_exceeded", "engine_overloaded"),
    503: ("service_unavailable", "model_not_ready"),
    504: ("timeout", "generation_timeout"),
    424: ("server_error", "adapter_unavailable"),
}


def error_document(error: InferenceError) -> dict[str, Any]:
    kind, code = _KINDS.get(status_of(error), ("server_error", None))
    param = error.param if isinstance(error, InvalidRequestError) else None
    return {"error": {"message": str(error), "type": kind, "param": param, "code": code}}


def error_response(error: InferenceError) -> Response:
    return json_response(error_document(error), status_of(error), retry_headers(error))


class Shape:
    """The response objects of one generation request, with one id and creation time."""

    def __init__(self, *, chat: bool, model: str) -> None:
        self.chat, self.model = chat, model
        self.id = f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex}"
        self.created = int(time.time())

    def _head(self, kind: str) -> dict[str, Any]:
        return {"id": self.id, "object": kind, "created": self.created, "model": self.model}

    def whole(self, result: Completion) -> dict[str, Any]:
        reason = result.finish_reason
        if self.chat:
            choice: dict[str, Any] = {
                "index": 0,
                "message": {"role": "assistant", "content": result.text},
                "logprobs": None,
                "finish_reason": reason,
            }
            document = self._head("chat.completion")
        else:
            choice = {"index": 0, "text": result.text, "logprobs": None, "finish_reason": reason}
            document = self._head("text_completion")
        return {**document, "choices": [choice], "usage": usage(result)}

    def chunk(
        self, content: str | dict[str, str] | None, finish_reason: str | None = None, **extra: Any
    ) -> dict[str, Any]:
        if self.chat:
            delta = {"content": content} if isinstance(content, str) else content or {}
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            document = self._head("chat.completion.chunk")
        else:
            text = content if isinstance(content, str) else ""
            choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish_reason}
            document = self._head("text_completion")
        return {**document, "choices": [choice], **extra}

    def usage_chunk(self, result: Completion) -> dict[str, Any]:
        kind = "chat.completion.chunk" if self.chat else "text_completion"
        return {**self._head(kind), "choices": [], "usage": usage(result)}


def usage(result: Completion) -> dict[str, int]:
    return {
        "prompt_tokens": result.prompt_tokens,
        "completion_tokens": result.completion_tokens,
        "total_tokens": result.prompt_tokens + result.completion_tokens,
    }


def embeddings(model: str, embedded: Embeddings, encoding: str) -> dict[str, Any]:
    data = [
        {"object": "embedding", "index": i, "embedding": _vector(row, encoding)}
        for i, row in enumerate(embedded.vectors)
    ]
    tokens = embedded.tokens
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def _vector(row: np.ndarray, encoding: str) -> list[float] | str:
    if encoding == "base64":  # little-endian float32, as the official client decodes it
        return base64.b64encode(row.astype("<f4").tobytes()).decode()
    return [float(x) for x in row]


async def events(
    shape: Shape,
    first: str | Completion,
    pieces: AsyncGenerator[str | Completion, None],
    *,
    include_usage: bool,
) -> AsyncIterator[bytes]:
    """A generation's stream as the API sends it, from its first piece (already generated, so
    that an error before it could still be a plain HTTP answer)."""
    # With include_usage every chunk carries "usage": null and a last chunk the totals.
    extra: dict[str, Any] = {"usage": None} if include_usage else {}
    try:
        if shape.chat:
            yield _event(shape.chunk({"role": "assistant", "content": ""}, **extra))
        item = first
        while not isinstance(item, Completion):
            yield _event(shape.chunk(item, **extra))
            item = await anext(pieces)
        yield _event(shape.chunk(None, item.finish_reason, **extra))
        if include_usage:
            yield _event(shape.usage_chunk(item))
        # For the gateway's token quota; an SSE comment, which clients ignore.
        yield b": usage " + orjson.dumps(usage(item)) + b"\n\n"
    except InferenceError as exc:  # mid-stream: the status line is gone, send an event
        yield _event(error_document(exc))
    yield b"data: [DONE]\n\n"


def _event(document: object) -> bytes:
    return b"data: " + orjson.dumps(document) + b"\n\n"


class EventStream(StreamingResponse):
    """Server-sent events with a clean-up that runs however the response ends, even when the
    client leaves before the first byte (when the event generator never starts)."""

    def __init__(
        self,
        events: AsyncIterator[bytes],
        finish: Callable[[], Awaitable[None]],
        status_code: int = 200,
    ) -> None:
        super().__init__(events, status_code, media_type="text/event-stream", headers=SSE_HEADERS)
        self._finish = finish

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._finish()
