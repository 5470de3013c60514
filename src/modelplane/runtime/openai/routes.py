"""The OpenAI API over the runtime's one model: models, chat completions, completions and
embeddings, with streaming as server-sent events.

Generation goes through :class:`~modelplane.runtime.generation.Generation`; embeddings go through
the data plane like a v2 request (a ``text`` BYTES input, an ``embedding`` output), so they are
batched and counted the same way. Errors take the API's shape,
``{"error": {"message", "type", "param", "code"}}``, which the official client raises as its own
exceptions; an error after a stream has begun is sent as an event carrying that object, then the
stream ends.
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any

import numpy as np
import orjson
from opentelemetry import trace
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from modelplane.api import GENERATIVE_TASKS, Task
from modelplane.errors import InferenceError, InvalidRequestError, ModelNotFoundError
from modelplane.runtime.dataplane import DataPlane
from modelplane.runtime.formats.base import EMBEDDING_OUTPUT, TEXT_INPUT, TOKEN_COUNT_OUTPUT
from modelplane.runtime.generation import Completion, Generation, Prompt, Sampling
from modelplane.runtime.openai import schemas
from modelplane.runtime.receiving import ClientGoneError, read_body, until_gone
from modelplane.runtime.replies import JSON, OUTCOMES, status_of
from modelplane.runtime.types import InferenceRequest, Tensor
from modelplane.telemetry import names

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class OpenAIRoutes:
    def __init__(
        self, dataplane: DataPlane, task: Task, max_request_bytes: int, owner: str = "modelplane"
    ) -> None:
        self.dataplane, self.task, self.owner = dataplane, task, owner
        self.max_request_bytes = max_request_bytes
        self.generation: Generation | None = None  # set once a language model is loaded
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

    def _model_object(self) -> dict[str, Any]:
        return {
            "id": self.dataplane.name,
            "object": "model",
            "created": self.created,
            "owned_by": self.owner,
        }

    async def list_models(self, request: Request) -> Response:
        return _json({"object": "list", "data": [self._model_object()]})

    async def get_model(self, request: Request) -> Response:
        try:
            self._check_model(request.path_params["model"])
        except InferenceError as exc:
            return error_response(exc)
        return _json(self._model_object())

    # -- generation ---------------------------------------------------------------------------

    async def chat(self, request: Request) -> Response:
        return await self._generation_request(request, chat=True)

    async def completions(self, request: Request) -> Response:
        return await self._generation_request(request, chat=False)

    async def _generation_request(self, request: Request, *, chat: bool) -> Response:
        try:
            raw = await self._body(request)
            body: schemas.ChatCompletionRequest | schemas.CompletionRequest
            if chat:
                body = schemas.parse(schemas.ChatCompletionRequest, raw)
                generation = self._generation(body.model, request.url.path)
                rendering = generation.chat_prompt(body.conversation())
            else:
                body = schemas.parse(schemas.CompletionRequest, raw)
                generation = self._generation(body.model, request.url.path)
                rendering = generation.prompt(body.text())
            prompt = await until_gone(request.receive, rendering)
            return await self._generate(request, generation, body, prompt, chat=chat)
        except InferenceError as exc:
            return self._refused(exc)
        except ClientGoneError:
            return Response(status_code=499)

    def _generation(self, model: str, path: str) -> Generation:
        self._check_model(model)
        self._check_task(path)
        assert self.generation is not None  # set before the data plane turns ready
        return self.generation

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

    async def _generate(
        self,
        request: Request,
        generation: Generation,
        body: schemas.ChatCompletionRequest | schemas.CompletionRequest,
        prompt: Prompt,
        *,
        chat: bool,
    ) -> Response:
        requested = (
            body.requested_tokens()
            if isinstance(body, schemas.ChatCompletionRequest)
            else body.max_tokens
        )
        asked = Sampling(
            max_tokens=0,  # decided by sampling_for
            temperature=body.temperature,
            top_p=body.top_p,
            seed=body.seed,
            stop=body.stops(),
        )
        sampling = generation.sampling_for(prompt, requested, asked)
        shape = _Shape(chat=chat, model=body.model)
        _describe_request(shape, sampling, self.dataplane.name)
        if not body.stream:
            with self.dataplane.scope():
                result = await until_gone(request.receive, generation.complete(prompt, sampling))
            self.dataplane.metrics.count("success")
            _describe_result(result)
            return _json(shape.whole(result))
        scope = self.dataplane.scope()
        scope.__enter__()  # left when the stream ends, however it ends
        pieces = generation.stream(prompt, sampling)
        try:
            first = await until_gone(
                request.receive, anext(pieces)
            )  # errors before any byte: plain HTTP
        except BaseException:
            scope.__exit__(None, None, None)
            raise
        self.dataplane.metrics.count("success")
        events = _events(shape, first, pieces, include_usage=body.include_usage)

        async def finish() -> None:
            await pieces.aclose()  # the client left, or the stream ended: free the model
            scope.__exit__(None, None, None)

        return EventStream(events, finish)

    # -- embeddings ---------------------------------------------------------------------------

    async def embeddings(self, request: Request) -> Response:
        try:
            body = schemas.parse(schemas.EmbeddingRequest, await self._body(request))
            self._check_model(body.model)
            self._check_task(request.url.path)
            texts = body.texts()
            tensor = Tensor(
                TEXT_INPUT, "BYTES", np.array([t.encode() for t in texts], dtype=object)
            )
            with self.dataplane.scope() as scope:
                answer = await self.dataplane.infer(
                    self.dataplane.name, None, InferenceRequest(inputs=[tensor]), scope
                )
            outputs = {t.name: t.data for t in answer.outputs}
            vectors = outputs[EMBEDDING_OUTPUT]
            if body.dimensions is not None and body.dimensions != vectors.shape[1]:
                raise InvalidRequestError(
                    f"dimensions is {body.dimensions}; this model's embeddings have "
                    f"{vectors.shape[1]} dimensions",
                    param="dimensions",
                )
            tokens = int(outputs[TOKEN_COUNT_OUTPUT].sum()) if TOKEN_COUNT_OUTPUT in outputs else 0
        except InferenceError as exc:
            return self._refused(exc)
        except ClientGoneError:
            return Response(status_code=499)
        self.dataplane.metrics.count("success")
        span = trace.get_current_span()
        if span.is_recording():
            span.set_attributes(
                {
                    names.GEN_AI_OPERATION_NAME: "embeddings",
                    names.GEN_AI_PROVIDER_NAME: "modelplane",
                    names.GEN_AI_REQUEST_MODEL: body.model,
                    names.GEN_AI_USAGE_INPUT_TOKENS: tokens,
                }
            )
        data = [
            {"object": "embedding", "index": i, "embedding": _vector(row, body.encoding_format)}
            for i, row in enumerate(vectors)
        ]
        return _json(
            {
                "object": "list",
                "data": data,
                "model": body.model,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )

    # -- helpers ------------------------------------------------------------------------------

    def _refused(self, error: InferenceError) -> Response:
        """The error as the API answers it, counted by outcome like every request."""
        response = error_response(error)
        self.dataplane.metrics.count(OUTCOMES.get(response.status_code, "error"))
        return response

    def _check_model(self, model: str) -> None:
        """The model field names this runtime's model: ``name``, or ``namespace/name`` as the
        gateway's clients may write it."""
        if model.rsplit("/", 1)[-1] != self.dataplane.name:
            raise ModelNotFoundError(
                f"no model {model!r} here; this runtime serves {self.dataplane.name!r}"
            )
        self.dataplane.check_ready(self.dataplane.name)

    async def _body(self, request: Request) -> bytes:
        return await read_body(request.scope, request.receive, self.max_request_bytes)


async def _events(
    shape: _Shape,
    first: str | Completion,
    pieces: AsyncGenerator[str | Completion, None],
    *,
    include_usage: bool,
) -> AsyncIterator[bytes]:
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
        _describe_result(item)  # still in the request's span: it ends with the stream
        if include_usage:
            yield _event(shape.usage_chunk(item))
        # For the gateway's token quota; an SSE comment, which clients ignore.
        yield b": usage " + orjson.dumps(_usage(item)) + b"\n\n"
    except InferenceError as exc:  # mid-stream: the status line is gone, send an event
        yield _event(error_document(exc))
    yield b"data: [DONE]\n\n"


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


class _Shape:
    """The response objects of one request, with one id and creation time."""

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
        return {**document, "choices": [choice], "usage": _usage(result)}

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
        return {**self._head(kind), "choices": [], "usage": _usage(result)}


def _describe_request(shape: _Shape, sampling: Sampling, served: str) -> None:
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


def _describe_result(result: Completion) -> None:
    span = trace.get_current_span()
    if span.is_recording():
        span.set_attributes(
            {
                names.GEN_AI_USAGE_INPUT_TOKENS: result.prompt_tokens,
                names.GEN_AI_USAGE_OUTPUT_TOKENS: result.completion_tokens,
                names.GEN_AI_RESPONSE_FINISH_REASONS: [result.finish_reason],
            }
        )


def _usage(result: Completion) -> dict[str, int]:
    return {
        "prompt_tokens": result.prompt_tokens,
        "completion_tokens": result.completion_tokens,
        "total_tokens": result.prompt_tokens + result.completion_tokens,
    }


def _vector(row: np.ndarray, encoding: str) -> list[float] | str:
    if encoding == "base64":  # little-endian float32, as the official client decodes it
        return base64.b64encode(row.astype("<f4").tobytes()).decode()
    return [float(x) for x in row]


# -- errors -----------------------------------------------------------------------------------

# The API's error type and code for each status.
_KINDS: dict[int, tuple[str, str | None]] = {
    413: ("invalid_request_error", "request_too_large"),
    400: ("invalid_request_error", None),
    404: ("invalid_request_error", "model_not_found"),
    503: ("service_unavailable", "model_not_ready"),
    504: ("timeout", "generation_timeout"),
}


def error_document(error: InferenceError) -> dict[str, Any]:
    kind, code = _KINDS.get(status_of(error), ("server_error", None))
    param = error.param if isinstance(error, InvalidRequestError) else None
    return {"error": {"message": str(error), "type": kind, "param": param, "code": code}}


def error_response(error: InferenceError) -> Response:
    return _json(error_document(error), status_of(error))


def _json(document: object, status: int = 200) -> Response:
    return Response(orjson.dumps(document), status_code=status, media_type=JSON)


def _event(document: object) -> bytes:
    return b"data: " + orjson.dumps(document) + b"\n\n"
