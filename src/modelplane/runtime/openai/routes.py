"""The OpenAI API over the runtime's one model: models, chat completions, completions and
embeddings, with streaming as server-sent events.

Each request is parsed into calls of the data plane (a prompt, its sampling, then ``generate``,
``stream`` or ``embed``) and what they return is written as the API's documents
(``documents.py``). The data plane holds each request's scope and counts its outcome; this adapter
only tells it of the requests it refused before calling it (a body that is no JSON, another
model's name, a prompt that does not fit).
"""

from __future__ import annotations

import time
from typing import Any

from opentelemetry import trace
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from modelplane.api import GENERATIVE_TASKS, Task
from modelplane.errors import (
    ClientGoneError,
    InferenceError,
    InvalidRequestError,
    ModelNotFoundError,
)
from modelplane.runtime.dataplane import DataPlane
from modelplane.runtime.generation import ChatMessage, Prompt, Sampling
from modelplane.runtime.openai import schemas
from modelplane.runtime.openai.documents import EventStream, Shape, error_response, events
from modelplane.runtime.openai.documents import embeddings as embeddings_document
from modelplane.runtime.receiving import read_body, until_gone
from modelplane.runtime.replies import json_response
from modelplane.telemetry import names

GenerationRequest = schemas.ChatCompletionRequest | schemas.CompletionRequest
CLIENT_GONE = 499  # nginx's "client closed request": no one reads it, the access log does


class OpenAIRoutes:
    def __init__(
        self, dataplane: DataPlane, task: Task, max_request_bytes: int, owner: str = "modelplane"
    ) -> None:
        self.dataplane, self.task, self.owner = dataplane, task, owner
        self.max_request_bytes = max_request_bytes
        self.created = int(time.time())

    def routes(self) -> list[Route]:
        return [
            Route("/v1/models", self.list_models),
            Route("/v1/models/{model:path}", self.get_model),
            Route("/v1/chat/completions", self.chat, methods=["POST"]),
            Route("/v1/completions", self.completions, methods=["POST"]),
            Route("/v1/embeddings", self.embeddings, methods=["POST"]),
        ]

    # -- models -------------------------------------------------------------------------------

    def _model_object(self, adapter: str | None = None) -> dict[str, Any]:
        found: dict[str, Any] = {
            "id": adapter or self.dataplane.name,
            "object": "model",
            "created": self.created,
            "owned_by": self.owner,
        }
        if adapter is not None:
            found["parent"] = self.dataplane.name  # the base model the adapter applies to
        return found

    async def list_models(self, request: Request) -> Response:
        adapters = self.dataplane.adapters
        served = [None, *(adapters.names() if adapters is not None else ())]
        return json_response({"object": "list", "data": [self._model_object(a) for a in served]})

    async def get_model(self, request: Request) -> Response:
        try:
            adapter = self._check_model(request.path_params["model"])
        except InferenceError as exc:
            return error_response(exc)
        return json_response(self._model_object(adapter))

    # -- generation ---------------------------------------------------------------------------

    async def chat(self, request: Request) -> Response:
        return await self._generation_request(request, chat=True)

    async def completions(self, request: Request) -> Response:
        return await self._generation_request(request, chat=False)

    async def _generation_request(self, request: Request, *, chat: bool) -> Response:
        try:
            body, prompt, sampling, adapter = await self._generation_call(request, chat=chat)
        except InferenceError as exc:
            return self._refused(exc)
        except ClientGoneError:
            return Response(status_code=CLIENT_GONE)
        shape = Shape(chat=chat, model=body.model)
        _describe_request(shape, sampling, self.dataplane.name)
        try:
            if body.stream:
                return await self._streamed(
                    request, shape, prompt, sampling, body.include_usage, adapter
                )
            answer = self.dataplane.generate(prompt, sampling, adapter)
            result = await until_gone(request.receive, answer)
        except InferenceError as exc:
            return error_response(exc)  # counted by the data plane
        except ClientGoneError:
            return Response(status_code=CLIENT_GONE)
        return json_response(shape.whole(result))

    async def _generation_call(
        self, request: Request, *, chat: bool
    ) -> tuple[GenerationRequest, Prompt, Sampling, str | None]:
        """The request's body, its prompt in tokens, its sampling and the adapter it names,
        checked against the model."""
        raw = await self._body(request)
        body: GenerationRequest
        if chat:
            body = schemas.parse(schemas.ChatCompletionRequest, raw)
            given: str | list[ChatMessage] = body.conversation()
            requested = body.requested_tokens()
        else:
            body = schemas.parse(schemas.CompletionRequest, raw)
            given, requested = body.text(), body.max_tokens
        adapter = self._check_model(body.model)
        self._check_task(request.url.path)
        prompt = await until_gone(request.receive, self.dataplane.prompt(given))
        asked = Sampling(
            max_tokens=0,  # fitted by the data plane
            temperature=body.temperature,
            top_p=body.top_p,
            seed=body.seed,
            stop=body.stops(),
        )
        return body, prompt, self.dataplane.sampling(prompt, requested, asked), adapter

    async def _streamed(
        self,
        request: Request,
        shape: Shape,
        prompt: Prompt,
        sampling: Sampling,
        usage: bool,
        adapter: str | None,
    ) -> Response:
        pieces = self.dataplane.stream(prompt, sampling, adapter)
        try:  # the first piece before the status line: an error until then is plain HTTP
            first = await until_gone(request.receive, anext(pieces))
        except BaseException:
            await pieces.aclose()
            raise
        # Closed however the response ends: the client that leaves frees the model at once.
        return EventStream(events(shape, first, pieces, include_usage=usage), pieces.aclose)

    # -- embeddings ---------------------------------------------------------------------------

    async def embeddings(self, request: Request) -> Response:
        try:
            body = schemas.parse(schemas.EmbeddingRequest, await self._body(request))
            if self._check_model(body.model) is not None:
                raise InvalidRequestError("adapters generate text; /v1/embeddings takes none")
            self._check_task(request.url.path)
        except InferenceError as exc:
            return self._refused(exc)
        except ClientGoneError:
            return Response(status_code=CLIENT_GONE)
        try:
            embedded = await self.dataplane.embed(body.texts(), body.dimensions)
        except InferenceError as exc:
            return error_response(exc)  # counted by the data plane
        span = trace.get_current_span()
        if span.is_recording():
            span.set_attributes(
                {
                    names.GEN_AI_OPERATION_NAME: "embeddings",
                    names.GEN_AI_PROVIDER_NAME: "modelplane",
                    names.GEN_AI_REQUEST_MODEL: body.model,
                }
            )
        return json_response(embeddings_document(body.model, embedded, body.encoding_format))

    # -- checks -------------------------------------------------------------------------------

    def _refused(self, error: InferenceError) -> Response:
        """The error as the API answers it, counted by the data plane like every request."""
        self.dataplane.refuse(error)
        return error_response(error)

    async def _body(self, request: Request) -> bytes:
        return await read_body(request.scope, request.receive, self.max_request_bytes)

    def _check_model(self, model: str) -> str | None:
        """The model field names this runtime's model or one of its LoRA adapters: ``name``, or
        ``namespace/name`` as the gateway's clients may write it. The adapter named, if any."""
        adapters, base = self.dataplane.adapters, self.dataplane.name
        if adapters is None and model.rsplit("/", 1)[-1] != base:
            self.dataplane.check_ready(base)  # while loading: 503, adapters come with the model
            raise ModelNotFoundError(f"no model {model!r} here; this runtime serves {base!r}")
        adapter = adapters.resolve(model) if adapters is not None else None
        self.dataplane.check_ready(base)
        return adapter

    def _check_task(self, path: str) -> None:
        """The model's task is what the endpoint at ``path`` serves."""
        if path == "/v1/embeddings":
            if self.task is not Task.EMBEDDING:
                raise InvalidRequestError(
                    f"model {self.dataplane.name!r} serves task {self.task.value!r}; "
                    f"/v1/embeddings needs an embedding model",
                    param="model",
                )
        elif self.task not in GENERATIVE_TASKS:
            raise InvalidRequestError(
                f"model {self.dataplane.name!r} serves task {self.task.value!r}, not text "
                f"generation; {path} needs a chat or text-generation model",
                param="model",
            )


def _describe_request(shape: Shape, sampling: Sampling, served: str) -> None:
    """The GenAI conventions' request attributes, on the request's span if it records."""
    span = trace.get_current_span()
    if not span.is_recording():
        return
    span.set_attributes(
        {
            names.GEN_AI_OPERATION_NAME: "chat" if shape.chat else "text_completion",
            names.GEN_AI_PROVIDER_NAME: "modelplane",
            names.GEN_AI_REQUEST_MODEL: shape.model,
            names.GEN_AI_RESPONSE_MODEL: served,
            names.GEN_AI_RESPONSE_ID: shape.id,
            names.GEN_AI_REQUEST_MAX_TOKENS: sampling.max_tokens,
            names.GEN_AI_REQUEST_TEMPERATURE: sampling.temperature,
            names.GEN_AI_REQUEST_TOP_P: sampling.top_p,
        }
    )
    if sampling.seed is not None:
        span.set_attribute(names.GEN_AI_REQUEST_SEED, sampling.seed)
