"""The runtime's one data plane: readiness, metadata, and every answer of the model it serves:
inference on tensors, embeddings, text generation whole or streamed, an engine's replies.

Protocol adapters (``v2``, ``openai``) parse requests into calls of it and format what it returns;
it raises errors of the tree, which they map to their protocol. Each call holds its request's
scope (``scopes.py``): in flight, timed and counted by outcome for as long as the answer lasts.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncGenerator, AsyncIterator
from enum import Enum
from typing import Any

import numpy as np
from opentelemetry import trace

from modelplane.errors import (
    InvalidRequestError,
    ModelNotFoundError,
    ModelNotReadyError,
    ModelplaneError,
    PredictError,
)
from modelplane.runtime import spans
from modelplane.runtime.adapters import Adapters
from modelplane.runtime.batching import Batcher, BatchTiming
from modelplane.runtime.datatypes import datatype_of
from modelplane.runtime.external import EngineReply, ExternalEngine
from modelplane.runtime.formats.base import (
    EMBEDDING_OUTPUT,
    TEXT_INPUT,
    TOKEN_COUNT_OUTPUT,
    Signature,
)
from modelplane.runtime.generation import ChatMessage, Completion, Generation, Prompt, Sampling
from modelplane.runtime.scopes import ENGINE_ERROR, SUCCESS, InFlight, RequestScope, outcome_of
from modelplane.runtime.types import (
    Array,
    Embeddings,
    InferenceRequest,
    InferenceResponse,
    ModelMetadata,
    Tensor,
)
from modelplane.runtime.validation import check_inputs, wanted_outputs
from modelplane.telemetry import names, tracing
from modelplane.telemetry.metrics import RuntimeMetrics


class ModelState(Enum):
    LOADING = "loading"
    READY = "ready"
    FAILED = "failed"


class DataPlane:
    def __init__(
        self, name: str, version: str, metrics: RuntimeMetrics, tracer: trace.Tracer | None
    ) -> None:
        self.name = name
        self.version = version
        self.metrics = metrics
        self._tracer = tracer
        self.state = ModelState.LOADING
        self.failure = ""
        self._signature = Signature(platform="")
        self._served: Batcher | Generation | ExternalEngine | None = None
        self._requests = InFlight(metrics)
        self.adapters: Adapters | None = None  # a language model's LoRA adapters, once served

    # -- lifecycle, driven by the server ---------------------------------------------------

    def arriving(self) -> int:
        return self._requests.arriving

    def serve(self, signature: Signature, by: Batcher | Generation | ExternalEngine) -> None:
        """Turn ready, answering through ``by``: a batcher for tensors, a generation for text,
        or an engine's own server, whose replies are relayed."""
        self._signature, self._served = signature, by
        self.state = ModelState.READY
        self.metrics.ready.set(1)

    def fail(self, reason: str) -> None:
        self.state, self.failure = ModelState.FAILED, reason
        self.metrics.ready.set(0)

    @property
    def ready(self) -> bool:
        return self.state is ModelState.READY

    # -- queries ----------------------------------------------------------------------------

    def metadata(self, name: str, version: str | None = None) -> ModelMetadata:
        self._find(name, version)
        return ModelMetadata(
            name=self.name,
            versions=(self.version,),
            platform=self._signature.platform,
            inputs=self._signature.inputs,
            outputs=self._signature.outputs,
        )

    def check_ready(self, name: str, version: str | None = None) -> None:
        self._find(name, version)
        if self.state is ModelState.LOADING:
            raise ModelNotReadyError(f"model {self.name!r} is still loading")
        if self.state is ModelState.FAILED:
            raise ModelNotReadyError(f"model {self.name!r} failed to load: {self.failure}")

    def _find(self, name: str, version: str | None) -> None:
        if name != self.name:
            raise ModelNotFoundError(f"no model {name!r} here; this runtime serves {self.name!r}")
        if version is not None and version != self.version:
            raise ModelNotFoundError(
                f"model {name!r} has no version {version!r}; it serves version {self.version!r}"
            )

    # -- requests ---------------------------------------------------------------------------

    def scope(self) -> RequestScope:
        """A request in flight from now: the v2 ``infer`` endpoint opens one at its first byte,
        so that the batcher waits for it, and passes it to :meth:`infer`."""
        return self._requests.open()

    def refuse(self, error: ModelplaneError) -> None:
        """Count a request its adapter refused before it reached the data plane (a body that is
        no JSON, another model's name), by the same outcomes as every other request."""
        self.metrics.count(outcome_of(error))

    # -- inference --------------------------------------------------------------------------

    async def infer(
        self, name: str, version: str | None, request: InferenceRequest, scope: RequestScope
    ) -> InferenceResponse:
        if self._tracer is None or not tracing.recording():
            return await self._infer(name, version, request, scope)
        # The model's attributes go on the request's own span: each span costs the Python SDK
        # tens of microseconds to make and as many to export, on requests of a few hundred.
        span = trace.get_current_span()
        span.set_attribute(names.ATTR_MODEL, name)
        timing = BatchTiming()
        try:
            response = await self._infer(name, version, request, scope, timing)
        except ModelplaneError as exc:
            span.set_attribute(names.ATTR_OUTCOME, type(exc).__name__)
            raise
        finally:
            spans.batch_spans(self._tracer, timing)
        span.set_attribute(names.ATTR_MODEL_VERSION, self.version)
        return response

    async def _infer(
        self,
        name: str,
        version: str | None,
        request: InferenceRequest,
        scope: RequestScope,
        timing: BatchTiming | None = None,
    ) -> InferenceResponse:
        self.check_ready(name, version)
        if not isinstance(self._served, Batcher):
            raise InvalidRequestError(
                f"model {self.name!r} generates text and takes no tensors; "
                f"use /v1/chat/completions or /v1/completions"
            )
        check_inputs(self._signature, request)
        wanted = wanted_outputs(self._signature, request)
        scope.reached_batcher()
        results = await self._served.submit(request.arrays(), timing)
        return InferenceResponse(
            model_name=self.name,
            model_version=self.version,
            outputs=[self._output(n, results) for n in (wanted or results)],
            id=request.id,
        )

    def _output(self, name: str, results: dict[str, Array]) -> Tensor:
        if name not in results:
            raise PredictError(f"the model returned no output {name!r}")
        array = results[name]
        try:
            return Tensor(name, datatype_of(array), array)
        except TypeError as exc:
            raise PredictError(f"output {name!r}: {exc}") from exc

    async def embed(self, texts: list[str], dimensions: int | None = None) -> Embeddings:
        """Texts as vectors, batched like any inference: an embedding model takes them as its
        ``text`` input (``formats/base.py``). ``dimensions``, if given, must be the model's."""
        tensor = Tensor(TEXT_INPUT, "BYTES", np.array([t.encode() for t in texts], dtype=object))
        with self.scope() as scope:
            answer = await self.infer(self.name, None, InferenceRequest(inputs=[tensor]), scope)
            outputs = {t.name: t.data for t in answer.outputs}
            vectors = outputs[EMBEDDING_OUTPUT]
            if dimensions is not None and dimensions != vectors.shape[1]:
                raise InvalidRequestError(
                    f"dimensions is {dimensions}; this model's embeddings have "
                    f"{vectors.shape[1]} dimensions",
                    param="dimensions",
                )
            tokens = int(outputs[TOKEN_COUNT_OUTPUT].sum()) if TOKEN_COUNT_OUTPUT in outputs else 0
            scope.served()
        spans.describe_embedding(tokens)
        return Embeddings(vectors, tokens)

    # -- generation ---------------------------------------------------------------------------

    async def prompt(self, given: str | list[ChatMessage]) -> Prompt:
        """A prompt in tokens: text as it is, a conversation rendered by the model's template."""
        if isinstance(given, str):
            return await self._generation().prompt(given)
        return await self._generation().chat_prompt(given)

    def sampling(self, prompt: Prompt, requested: int | None, asked: Sampling) -> Sampling:
        """``asked`` with ``max_tokens`` fitted to the model and the prompt (``requested`` None:
        as many as fit)."""
        return self._generation().sampling_for(prompt, requested, asked)

    async def generate(
        self, prompt: Prompt, sampling: Sampling, adapter: str | None = None
    ) -> Completion:
        """The whole answer, of the base model or of LoRA ``adapter``; cancelling the call (its
        client left) stops the generation."""
        with self.scope() as scope:
            async with self._adapter(adapter) as key:
                generation = self._generation()
                result = await generation.complete(
                    prompt, dataclasses.replace(sampling, adapter=key)
                )
            scope.served()
        spans.describe_completion(result)
        return result

    async def stream(
        self, prompt: Prompt, sampling: Sampling, adapter: str | None = None
    ) -> AsyncGenerator[str | Completion, None]:
        """Text pieces as they are generated, then the :class:`Completion`.

        The request is in flight from the first step of the iteration until it ends, however it
        ends: exhausted, failed, cancelled, or closed early because the client left (which stops
        the generation). It counts as served from its first piece: a failure later is sent in
        the stream, after a status line that said success.
        """
        with self.scope() as scope:
            async with self._adapter(adapter) as key:
                asked = dataclasses.replace(sampling, adapter=key)
                pieces = self._generation().stream(prompt, asked)
                try:
                    async for piece in pieces:
                        scope.served()
                        if isinstance(piece, Completion):
                            spans.describe_completion(piece)  # the span ends with the stream
                        yield piece
                finally:
                    await pieces.aclose()

    @contextlib.asynccontextmanager
    async def _adapter(self, name: str | None) -> AsyncIterator[str]:
        """The engine's key of LoRA adapter ``name``, held until the answer ends; "" for none."""
        if name is None:
            yield ""
            return
        if self.adapters is None:
            raise ModelNotFoundError(f"model {self.name!r} serves no adapters")
        async with self.adapters.lease(name) as key:
            yield key

    def _generation(self) -> Generation:
        if isinstance(self._served, Generation):
            return self._served
        self.check_ready(self.name)
        raise InvalidRequestError(
            f"model {self.name!r} takes tensors and generates no text; "
            f"use /v2/models/{self.name}/infer",
            param="model",
        )

    # -- an engine's own server -----------------------------------------------------------------

    async def relay(self, path: str, document: dict[str, Any]) -> EngineReply:
        """The engine's answer to an OpenAI API request, which the engine's server takes as it
        is. The request stays in flight until the reply is closed (its caller closes it however
        the answer ends); an error status of the engine's own counts as ``engine_error``."""
        scope = self.scope()
        try:
            reply = await self._engine().send(path, document)
        except BaseException as exc:
            scope.close(exc)
            raise
        scope.ended(SUCCESS if reply.status < 400 else ENGINE_ERROR)

        async def close() -> None:
            try:
                await reply.close()
            finally:
                scope.close()

        return dataclasses.replace(reply, close=close)

    def _engine(self) -> ExternalEngine:
        if isinstance(self._served, ExternalEngine):
            return self._served
        self.check_ready(self.name)
        raise PredictError(f"model {self.name!r} is served in this process, not by an engine")
