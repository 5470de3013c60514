"""The runtime's HTTP API as OpenAPI 3.1, served as ``GET /openapi.json``: the Open Inference
Protocol v2 for its one model, the OpenAI API when the model speaks it, and ``/metrics``.

It describes this runtime, not runtimes in general: the path parameters take the one model name
and version it serves, and once the model has loaded, its inputs' names, datatypes and ranks
shape the inference request (before, any tensor does). The OpenAI bodies are the pydantic types
that validate them. :class:`~modelplane.runtime.server.Runtime` adds the route.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from starlette.requests import Request
from starlette.responses import Response

from modelplane import __version__
from modelplane.api import GENERATIVE_TASKS, ModelSpec, Task
from modelplane.api import inference_protocol as p
from modelplane.api import openapi as oa
from modelplane.api.openapi import Schema
from modelplane.runtime.dataplane import DataPlane
from modelplane.runtime.formats.base import EMBEDDING_OUTPUT
from modelplane.runtime.openai import schemas
from modelplane.runtime.replies import json_response
from modelplane.runtime.types import ModelMetadata, TensorSpec

NOT_FOUND = p.error("No such model or version here.")
NOT_READY = p.error("The model is still loading, or failed to load.")


def _inputs(specs: tuple[TensorSpec, ...]) -> Schema:
    """The ``inputs`` array: each declared input once, by name, datatype and rank."""
    if not specs:
        return {"type": "array", "minItems": 1, "items": p.ANY_INPUT}
    each = [
        p.request_input(
            {"const": spec.name},
            {"enum": [spec.datatype, "BF16"] if spec.datatype == "FP32" else [spec.datatype]},
            {**p.SHAPE, "minItems": len(spec.shape), "maxItems": len(spec.shape)},
        )
        for spec in specs
    ]
    items = each[0] if len(each) == 1 else {"anyOf": each}
    return {"type": "array", "minItems": len(each), "maxItems": len(each), "items": items}


def _v2_paths(name: str, version: str, inputs: Schema | None) -> dict[str, Schema]:
    """``inputs`` None: a language model, which takes no tensors (and so no ``infer``)."""
    model = [oa.path_parameter("name", {"enum": [name]}, "The model this runtime serves.")]
    versioned = [*model, oa.path_parameter("version", {"enum": [version]}, "Its version.")]
    infer = {
        200: p.infer_reply(),
        405: p.ANOTHER_PATH,
        400: p.error("The request is malformed, or does not fit the model's inputs."),
        404: NOT_FOUND,
        413: p.error("The body is over the model's runtime.maxRequestBytes."),
        500: p.error("The model failed on this input."),
        503: NOT_READY,
    }
    described: dict[str, Schema] = {}
    for suffix, parameters, key in (("", model, "Model"), ("/versions/{version}", versioned,
                                                           "ModelVersion")):  # fmt: skip
        where = "/v2/models/{name}" + suffix
        described[where] = {"get": oa.operation(
            f"get{key}", "Metadata: inputs, outputs, platform.",
            {200: oa.json_reply("The metadata.", oa.ref("ModelMetadata")), 404: NOT_FOUND,
             405: p.ANOTHER_PATH}, parameters,
        )}  # fmt: skip
        described[where + "/ready"] = {"get": oa.operation(
            f"get{key}Ready", "Readiness.",
            {200: oa.json_reply("Ready.", oa.ref("ModelReady")), 404: NOT_FOUND,
             405: p.ANOTHER_PATH, 503: NOT_READY}, parameters,
        )}  # fmt: skip
        if inputs is not None:
            described[where + "/infer"] = {"post": oa.operation(
                f"infer{key}", "Inference (JSON; the binary tensor extension is also taken).",
                infer, parameters, p.inference_request(inputs),
            )}  # fmt: skip
    return described


def _server_paths() -> dict[str, Schema]:
    return {
        "/v2": {"get": oa.operation("getServerMetadata", "Server metadata.",
                                   {200: oa.json_reply("The server.", oa.ref("ServerMetadata"))})},
        "/v2/health/live": {"get": oa.operation("getLive", "Liveness: the process serves HTTP.",
                                               {200: oa.json_reply("Live.", oa.ref("Live"))})},
        "/v2/health/ready": {"get": oa.operation(
            "getReady", "Readiness: the model is loaded.",
            {200: oa.json_reply("Ready.", oa.ref("Ready")), 503: NOT_READY})},
        "/metrics": {"get": oa.operation("getMetrics", "Prometheus metrics.",
                                        {200: oa.reply("The exposition.", {p.TEXT: oa.STRING})})},
        "/openapi.json": {"get": oa.operation(
            "getOpenAPI", "This description.",
            {200: oa.json_reply("The description.", {"type": "object"})})},
    }  # fmt: skip


_BODIES: dict[str, type[BaseModel]] = {
    "/v1/chat/completions": schemas.ChatCompletionRequest,
    "/v1/completions": schemas.CompletionRequest,
    "/v1/embeddings": schemas.EmbeddingRequest,
}


def _openai_paths(task: Task) -> tuple[dict[str, Schema], dict[str, Schema]]:
    """The OpenAI operations for the model's task, and the schemas of their bodies."""
    wanted = ["/v1/embeddings"] if task is Task.EMBEDDING else []
    wanted += ["/v1/chat/completions", "/v1/completions"] if task in GENERATIVE_TASKS else []
    named, found = models_json_schema(
        [(_BODIES[path], "validation") for path in wanted], ref_template=oa.COMPONENTS + "{model}"
    )
    model = {
        "type": "object",
        "required": ["id", "object", "created", "owned_by"],
        "properties": {
            "id": oa.STRING,
            "object": {"const": "model"},
            "created": {"type": "integer"},
            "owned_by": oa.STRING,
        },
    }
    not_ready = p.error("The model is still loading, or failed to load.", openai=True)
    described: dict[str, Schema] = {
        "/v1/models": {"get": oa.operation("listModels", "The one model served here.", {
            200: oa.json_reply("The models.", {"type": "object", "required": ["object", "data"],
                              "properties": {"object": {"const": "list"},
                                             "data": {"type": "array", "items": model}}})})},
        "/v1/models/{model}": {"get": oa.operation("getModel", "The model, if named.", {
            200: oa.json_reply("The model.", model),
            404: p.error("Not the model served here.", openai=True), 503: not_ready},
            [oa.path_parameter("model", p.NAME, "name, or namespace/name")])},
    }  # fmt: skip
    for path in wanted:
        streams = {} if path == "/v1/embeddings" else {p.EVENTS: p.SSE_EVENT}
        responses = {
            200: oa.reply("The answer, or with stream the server-sent events.",
                         {oa.JSON: {"type": "object"}} | streams),
            400: p.error("A field is invalid, or the model's task is another.", openai=True),
            404: p.error("Not the model served here.", openai=True),
            413: p.error("The body is over the model's runtime.maxRequestBytes.", openai=True),
            503: not_ready,
            504: p.error("Generation ran past the model's timeout.", openai=True),
        }  # fmt: skip
        name = "create" + "".join(w.title() for w in path.removeprefix("/v1/").split("/"))
        body = named[(_BODIES[path], "validation")]
        described[path] = {"post": oa.operation(name, f"The OpenAI API's {path}.", responses,
                                               body=body)}  # fmt: skip
    return described, found.get("$defs", {})


def _fit(bodies: dict[str, Schema], max_tokens: int, width: int | None) -> None:
    """Write into the bodies' schemas the limits of this model: its generation.maxTokens, and
    an embedding model's one width (``dimensions`` must name it)."""
    limits = {"max_tokens": {"maximum": max_tokens}, "max_completion_tokens": {"maximum":
              max_tokens}, "dimensions": {"const": width} if width else {}}  # fmt: skip
    for body in bodies.values():
        for name, limit in limits.items():
            field = body.get("properties", {}).get(name, {})
            for branch in field.get("anyOf", [field]):
                if branch.get("type") == "integer":
                    branch.update(limit)


def describe(
    dataplane: DataPlane, spec: ModelSpec, openai: bool, metadata: ModelMetadata | None = None
) -> Schema:
    """The runtime's description; ``openai``: whether it serves the OpenAI API; ``metadata``:
    the loaded model's, if it has loaded."""
    inputs = metadata.inputs if metadata is not None else ()
    tensors = None if spec.task in GENERATIVE_TASKS else _inputs(inputs)
    paths = _server_paths() | _v2_paths(dataplane.name, dataplane.version, tensors)
    components = p.components()
    if openai:
        extra, bodies = _openai_paths(spec.task)
        outputs = metadata.outputs if metadata is not None else ()
        widths = [o.shape[-1] for o in outputs if o.name == EMBEDDING_OUTPUT]
        _fit(bodies, spec.generation.max_tokens, widths[0] if widths else None)
        paths |= extra
        components |= bodies
    return oa.document(
        f"modelplane runtime: {dataplane.name}",
        __version__,
        f"The Open Inference Protocol v2 for model {dataplane.name!r} (version "
        f"{dataplane.version!r})" + (", and the OpenAI API" if openai else "") + ".",
        paths,
        components,
    )


class Description:
    """``GET /openapi.json``: described again until the model is ready, whose inputs it names,
    then kept."""

    def __init__(self, dataplane: DataPlane, spec: ModelSpec, openai: bool) -> None:
        self.dataplane, self.spec, self.openai = dataplane, spec, openai
        self._kept: dict[str, Any] | None = None

    async def serve(self, request: Request) -> Response:
        if self._kept is not None:
            return json_response(self._kept)
        ready = self.dataplane.ready
        metadata = self.dataplane.metadata(self.dataplane.name) if ready else None
        described = describe(self.dataplane, self.spec, self.openai, metadata)
        if ready:
            self._kept = described
        return json_response(described)
