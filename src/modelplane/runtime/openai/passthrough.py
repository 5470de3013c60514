"""The OpenAI API in front of an engine's own server: requests checked here, answered there.

What the runtime can judge without the model it checks itself, with the same errors as for an
engine inside the runtime: the body (JSON, fields, unsupported features), the model's name and
task, and ``max_tokens`` against ``generation.maxTokens``. The rest (the prompt against the
context, generation itself) is the engine's; its answers, streams included, are passed back as
they come, and a client that leaves closes the engine's connection, which stops the work there.
"""

from __future__ import annotations

from typing import Any

import httpx
import orjson
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response

from modelplane.api import Task
from modelplane.errors import InferenceError, ModelNotReadyError, PredictError
from modelplane.runtime.dataplane import DataPlane
from modelplane.runtime.external import ExternalEngine
from modelplane.runtime.generation import check_max_tokens
from modelplane.runtime.openai import schemas
from modelplane.runtime.openai.documents import EventStream
from modelplane.runtime.openai.routes import OpenAIRoutes
from modelplane.runtime.receiving import ClientGoneError, until_gone
from modelplane.runtime.replies import JSON


class PassthroughRoutes(OpenAIRoutes):
    def __init__(
        self,
        dataplane: DataPlane,
        task: Task,
        max_request_bytes: int,
        max_tokens: int,
        timeout: float,
    ) -> None:
        super().__init__(dataplane, task, max_request_bytes)
        self.max_tokens = max_tokens
        self.engine: ExternalEngine | None = None  # set once the engine answers
        self.client = httpx.AsyncClient(timeout=httpx.Timeout(10, read=timeout))

    async def close(self) -> None:
        await self.client.aclose()

    async def chat(self, request: Request) -> Response:
        return await self._forward(request, schemas.ChatCompletionRequest)

    async def completions(self, request: Request) -> Response:
        return await self._forward(request, schemas.CompletionRequest)

    async def embeddings(self, request: Request) -> Response:
        return await self._forward(request, schemas.EmbeddingRequest)

    async def _forward(self, request: Request, kind: type[BaseModel]) -> Response:
        path = request.url.path
        scope = self.dataplane.scope()
        scope.__enter__()  # in flight from the first byte to the stream's end
        try:
            raw = await self._body(request)
            body: Any = schemas.parse(kind, raw)
            self._check_model(body.model)
            self._check_task(path)
            if isinstance(body, schemas.ChatCompletionRequest):
                check_max_tokens(body.requested_tokens(), self.max_tokens)
            elif isinstance(body, schemas.CompletionRequest):
                check_max_tokens(body.max_tokens, self.max_tokens)
            if self.engine is None:
                raise ModelNotReadyError(f"model {self.dataplane.name!r} is still loading")
            document = orjson.loads(raw)
            document["model"] = self.dataplane.name  # the name the engine serves it under
            sent = self.client.build_request(
                "POST",
                self.engine.url + path,
                content=orjson.dumps(document),
                headers={"content-type": JSON},
            )
            try:
                reply = await until_gone(request.receive, self.client.send(sent, stream=True))
            except httpx.TransportError as exc:
                raise PredictError(f"the engine did not answer: {exc}") from exc
        except InferenceError as exc:
            scope.__exit__(None, None, None)
            return self._refused(exc)
        except ClientGoneError:
            scope.__exit__(None, None, None)
            return Response(status_code=499)
        self.dataplane.metrics.count("success" if reply.status_code < 400 else "engine_error")

        async def finish() -> None:
            await reply.aclose()
            scope.__exit__(None, None, None)

        media = reply.headers.get("content-type", JSON)
        if media.startswith("text/event-stream"):
            return EventStream(reply.aiter_raw(), finish, reply.status_code)
        try:
            content = await reply.aread()
        finally:
            await finish()
        return Response(content, reply.status_code, media_type=media)
