"""The OpenAI API in front of an engine's own server: requests checked here, answered there.

What the runtime can judge without the model it checks itself, with the same errors as for an
engine inside the runtime: the body (JSON, fields, unsupported features), the model's name and
task, and ``max_tokens`` against ``generation.maxTokens``. The rest (the prompt against the
context, generation itself) is the engine's; its answers, streams included, are passed back as
they come, and a client that leaves closes the engine's connection, which stops the work there.
"""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response

from modelplane.api import Task
from modelplane.errors import ClientGoneError, InferenceError
from modelplane.runtime.dataplane import DataPlane
from modelplane.runtime.generation import check_max_tokens
from modelplane.runtime.openai import schemas
from modelplane.runtime.openai.documents import EventStream, error_response
from modelplane.runtime.openai.routes import CLIENT_GONE, OpenAIRoutes
from modelplane.runtime.receiving import until_gone


class PassthroughRoutes(OpenAIRoutes):
    def __init__(
        self, dataplane: DataPlane, task: Task, max_request_bytes: int, max_tokens: int
    ) -> None:
        super().__init__(dataplane, task, max_request_bytes)
        self.max_tokens = max_tokens

    async def chat(self, request: Request) -> Response:
        return await self._forward(request, schemas.ChatCompletionRequest)

    async def completions(self, request: Request) -> Response:
        return await self._forward(request, schemas.CompletionRequest)

    async def embeddings(self, request: Request) -> Response:
        return await self._forward(request, schemas.EmbeddingRequest)

    async def _forward(self, request: Request, kind: type[BaseModel]) -> Response:
        try:
            document = await self._checked(request, kind)
        except InferenceError as exc:
            return self._refused(exc)
        except ClientGoneError:
            return Response(status_code=CLIENT_GONE)
        relayed = self.dataplane.relay(request.url.path, document)
        try:
            reply = await until_gone(request.receive, relayed)
        except InferenceError as exc:
            return error_response(exc)  # counted by the data plane
        except ClientGoneError:
            return Response(status_code=CLIENT_GONE)
        if reply.media_type.startswith("text/event-stream"):
            return EventStream(reply.chunks, reply.close, reply.status)
        try:
            content = await reply.read()
        finally:
            await reply.close()
        return Response(content, reply.status, media_type=reply.media_type)

    async def _checked(self, request: Request, kind: type[BaseModel]) -> dict[str, Any]:
        """The request's body for the engine, once it passed what the runtime can check."""
        raw = await self._body(request)
        body: Any = schemas.parse(kind, raw)
        self._check_model(body.model)
        self._check_task(request.url.path)
        if isinstance(body, schemas.ChatCompletionRequest):
            check_max_tokens(body.requested_tokens(), self.max_tokens)
        elif isinstance(body, schemas.CompletionRequest):
            check_max_tokens(body.max_tokens, self.max_tokens)
        document: dict[str, Any] = orjson.loads(raw)
        document["model"] = self.dataplane.name  # the name the engine serves it under
        return document
