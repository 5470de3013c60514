"""The runtime's one data plane: readiness, metadata and inference for the model it serves.

Protocol adapters call it with decoded :mod:`~modelplane.runtime.types` values and map its errors
to their protocol; it validates requests against the model's signature, hands them to the batcher
and selects the requested outputs.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum

from opentelemetry import trace

from modelplane.errors import (
    InvalidRequestError,
    ModelNotFoundError,
    ModelNotReadyError,
    ModelplaneError,
    PredictError,
)
from modelplane.runtime.batching import Batcher, BatchTiming
from modelplane.runtime.datatypes import datatype_of
from modelplane.runtime.formats.base import Signature
from modelplane.runtime.types import (
    Array,
    InferenceRequest,
    InferenceResponse,
    ModelMetadata,
    Tensor,
    TensorSpec,
    rows,
)
from modelplane.telemetry import names, tracing
from modelplane.telemetry.metrics import RuntimeMetrics


class ModelState(Enum):
    LOADING = "loading"
    READY = "ready"
    FAILED = "failed"


@dataclass
class RequestScope:
    """One request's passage: counted in flight, and 'arriving' until it reaches the batcher."""

    arriving: bool = True


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
        self._batcher: Batcher | None = None
        self._arriving = 0

    # -- lifecycle, driven by the server ---------------------------------------------------

    def arriving(self) -> int:
        return self._arriving

    def serve(self, signature: Signature, batcher: Batcher | None) -> None:
        """Turn ready; ``batcher`` None: a language model, which serves no tensors."""
        self._signature, self._batcher = signature, batcher
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

    # -- inference --------------------------------------------------------------------------

    @contextmanager
    def scope(self) -> Iterator[RequestScope]:
        """Wrap a request from its first byte: in-flight accounting and batching hints."""
        scope = RequestScope()
        self._arriving += 1
        self.metrics.in_flight.inc()
        started = time.perf_counter()
        try:
            yield scope
        finally:
            if scope.arriving:
                self._arriving -= 1
            self.metrics.in_flight.dec()
            self.metrics.request_duration.observe(time.perf_counter() - started)

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
            self._batch_spans(timing)
        span.set_attribute(names.ATTR_MODEL_VERSION, self.version)
        return response

    def _batch_spans(self, timing: BatchTiming) -> None:
        """The request's wait in the batch queue and its model call, as child spans."""
        assert self._tracer is not None
        if not timing.started_ns:
            return  # refused before it reached the batcher
        queued = self._tracer.start_span("queue", start_time=timing.queued_ns)
        queued.end(end_time=timing.started_ns)
        if timing.finished_ns:
            attributes = {names.ATTR_BATCH_SIZE: timing.batch_size}
            ran = self._tracer.start_span(
                "inference", start_time=timing.started_ns, attributes=attributes
            )
            ran.end(end_time=timing.finished_ns)

    async def _infer(
        self,
        name: str,
        version: str | None,
        request: InferenceRequest,
        scope: RequestScope,
        timing: BatchTiming | None = None,
    ) -> InferenceResponse:
        self.check_ready(name, version)
        if self._batcher is None:
            raise InvalidRequestError(
                f"model {self.name!r} generates text and takes no tensors; "
                f"use /v1/chat/completions or /v1/completions"
            )
        self._validate(request)
        wanted = self._wanted_outputs(request)
        scope.arriving = False
        self._arriving -= 1
        results = await self._batcher.submit(request.arrays(), timing)
        return InferenceResponse(
            model_name=self.name,
            model_version=self.version,
            outputs=[self._output(n, results) for n in (wanted or results)],
            id=request.id,
        )

    def _validate(self, request: InferenceRequest) -> None:
        declared = {spec.name: spec for spec in self._signature.inputs}
        if not declared:
            return
        given = {tensor.name for tensor in request.inputs}
        missing = sorted(declared.keys() - given)
        if missing:
            raise InvalidRequestError(
                f"missing input {', '.join(map(repr, missing))}; the model takes "
                f"{_describe(self._signature.inputs)}"
            )
        extra = sorted(given - declared.keys())
        if extra:
            raise InvalidRequestError(
                f"unexpected input {', '.join(map(repr, extra))}; the model takes "
                f"{_describe(self._signature.inputs)}"
            )
        for tensor in request.inputs:
            _check_tensor(tensor, declared[tensor.name])
            if self._signature.batchable and not rows(tensor.data):
                # A batch of none: models differ on it (some fail), and it asks nothing.
                raise InvalidRequestError(
                    f"input {tensor.name!r} has shape {list(tensor.shape)}, no rows; the first "
                    f"dimension is the batch, of at least one"
                )

    def _wanted_outputs(self, request: InferenceRequest) -> list[str]:
        if request.outputs is None:
            return [spec.name for spec in self._signature.outputs]
        wanted = [output.name for output in request.outputs]
        declared = {spec.name for spec in self._signature.outputs}
        unknown = [n for n in wanted if declared and n not in declared]
        if unknown:
            raise InvalidRequestError(
                f"unknown output {', '.join(map(repr, unknown))}; the model returns "
                f"{', '.join(map(repr, sorted(declared)))}"
            )
        return wanted

    def _output(self, name: str, results: dict[str, Array]) -> Tensor:
        if name not in results:
            raise PredictError(f"the model returned no output {name!r}")
        array = results[name]
        try:
            return Tensor(name, datatype_of(array), array)
        except TypeError as exc:
            raise PredictError(f"output {name!r}: {exc}") from exc


def _check_tensor(tensor: Tensor, spec: TensorSpec) -> None:
    where = f"input {tensor.name!r}"
    if tensor.datatype != spec.datatype and not (
        tensor.datatype == "BF16" and spec.datatype == "FP32"
    ):
        raise InvalidRequestError(
            f"{where} has datatype {tensor.datatype}, the model expects {spec.datatype}"
        )
    shape = tensor.shape
    if len(shape) != len(spec.shape) or any(
        want not in (-1, got) for want, got in zip(spec.shape, shape, strict=True)
    ):
        raise InvalidRequestError(
            f"{where} has shape {list(shape)}, the model expects {list(spec.shape)} "
            f"(-1 is any size)"
        )


def _describe(specs: tuple[TensorSpec, ...]) -> str:
    return ", ".join(f"{s.name!r} ({s.datatype} {list(s.shape)})" for s in specs)
