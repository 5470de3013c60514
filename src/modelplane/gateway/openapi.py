"""The gateway's HTTP API as OpenAPI 3.1, served as ``GET /openapi.json`` to anyone (like the
health paths), built by :class:`~modelplane.gateway.proxy.Gateway` when it starts.

The gateway routes every model it knows, so a model is a path parameter (``name``, or
``namespace`` and ``name``) or an OpenAI API body's ``model``. What passes through from a replica
(inference answers, metadata, the runtime's own refusals) is described as the runtime describes
it; what the gateway answers itself (401 and 403, 404 for a model it does not route, 413, 429 over
a quota, 502 and 503) is described here. Of an OpenAI API body the gateway reads only what routes,
streams and counts a request; the runtime serving the model validates the rest.
"""

from __future__ import annotations

from modelplane import __version__
from modelplane.api import inference_protocol as p
from modelplane.api import openapi as oa
from modelplane.api.meta import DNS_LABEL
from modelplane.api.openapi import Schema
from modelplane.gateway import paths
from modelplane.gateway.attempts import REVISION_HEADER
from modelplane.gateway.replies import CHALLENGE

LABEL: Schema = {"type": "string", "minLength": 1, "maxLength": 63, "pattern": DNS_LABEL}
# In /v2/models/{namespace}/{name}/..., a second segment naming an action is read as the action
# of a model in the default namespace: no model is addressed by such a name that way.
NAMESPACED: Schema = {**LABEL, "not": {"enum": ["versions", *paths.ACTIONS]}}
NAMESPACE = oa.path_parameter("namespace", LABEL, "The model's namespace.")
VERSION = oa.path_parameter("version", LABEL, "A revision of the model, as iris-r2.")
MODEL_FIELD: Schema = {"type": "string", "minLength": 1, "description": "name or namespace/name"}

REVISION = {REVISION_HEADER: oa.header("The revision that answered.")}
MAY_RETRY = {"Retry-After": oa.retry_after(required=False)}
MUST_RETRY = {"Retry-After": oa.retry_after(required=True)}


_TOO_MANY = {
    False: "The namespace is over its quota.",
    True: "The namespace is over its quota, or the model is saturated and its waiting room "
    "refused the request: full, its place given to a request of higher priority or of a tenant "
    "holding less of the room, or held past the gateway's bound.",
}


def _model_failures(openai: bool) -> dict[int, Schema]:
    """What the gateway, or the replica it asked, may answer for any model request."""
    missing = "no such model, or revision"
    if openai:
        missing = "no such OpenAI model (one that speaks only v2 is not)"
    return {
        404: p.error(f"The gateway routes {missing}.", openai),
        429: p.error(_TOO_MANY[openai], openai, MUST_RETRY),
        502: p.error("No replica answered.", openai),
        503: p.error("No ready replica in time (it may be starting), or the replica is not "
                     "ready.", openai, MAY_RETRY),
    }  # fmt: skip


def _auth_failures(openai: bool) -> dict[int, Schema]:
    challenge = {"WWW-Authenticate": oa.header("The bearer challenge.", {"const": CHALLENGE}, True)}
    return {
        401: p.error("No valid credential.", openai, challenge),
        403: p.error("The credential may not read the model's namespace.", openai),
    }


def _v2_model_paths(prefix: str, parameters: list[Schema], auth: bool) -> dict[str, Schema]:
    failures = _model_failures(openai=False) | (_auth_failures(openai=False) if auth else {})
    failures[405] = p.ANOTHER_PATH  # e.g. a name "infer" after a namespace
    infer = {
        200: p.infer_reply(REVISION),
        400: p.error("The request is malformed, or does not fit the model's inputs."),
        413: p.error("The body is over the gateway's or the model's limit."),
        500: p.error("The model failed on this input."),
    }
    described: dict[str, Schema] = {}
    for suffix, versioned in (("", []), ("/versions/{version}", [VERSION])):
        where, given = prefix + suffix, parameters + versioned
        word = "Version" if versioned else "Model"
        key = "NamespacedModel" if NAMESPACE in parameters else "Model"
        key += "Version" if versioned else ""
        described[where] = {"get": oa.operation(
            f"get{key}", f"{word} metadata: inputs, outputs, platform.",
            {200: oa.json_reply("The metadata.", oa.ref("ModelMetadata"), REVISION)} | failures,
            given,
        )}  # fmt: skip
        described[where + "/ready"] = {"get": oa.operation(
            f"get{key}Ready", f"{word} readiness.",
            {200: oa.json_reply("Ready.", oa.ref("ModelReady"), REVISION)} | failures, given,
        )}  # fmt: skip
        described[where + "/infer"] = {"post": oa.operation(
            f"infer{key}", "Inference (JSON; the binary tensor extension is also taken).",
            infer | failures, given, p.inference_request(
                {"type": "array", "minItems": 1, "items": p.ANY_INPUT}),
        )}  # fmt: skip
    return described


def _openai_body(path: str) -> Schema:
    properties: Schema = {
        "model": MODEL_FIELD,
        "stream": {"type": "boolean", "description": "Answer as server-sent events."},
    }
    tokens = {"type": ["integer", "null"], "minimum": 1}
    if path == "/v1/chat/completions":
        content = {
            "anyOf": [
                {"type": ["string", "null"]},
                {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {"type": oa.STRING, "text": oa.STRING},
                    },
                },
            ]
        }
        message = {
            "type": "object",
            "required": ["role"],
            "properties": {"role": oa.STRING, "content": content},
        }
        properties |= {
            "messages": {"type": "array", "minItems": 1, "items": message},
            "max_tokens": tokens,
            "max_completion_tokens": tokens,
        }
        first = "messages"
    elif path == "/v1/completions":
        properties |= {
            "prompt": {"anyOf": [oa.STRING, {"type": "array", "items": oa.STRING}]},
            "max_tokens": tokens,
        }
        first = "prompt"
    else:
        properties["input"] = {"anyOf": [oa.STRING, {"type": "array", "items": oa.STRING}]}
        first = "input"
    return {"type": "object", "required": ["model", first], "properties": properties,
            "description": "What the gateway reads to route, stream and count the request; "
                           "the runtime serving the model validates every field."}  # fmt: skip


def _openai_paths(auth: bool) -> dict[str, Schema]:
    failures = _auth_failures(openai=True) if auth else {}
    model_object = {
        "type": "object",
        "required": ["id", "object", "owned_by"],
        "properties": {
            "id": oa.STRING,
            "object": {"const": "model"},
            "owned_by": oa.STRING,
            "created": {"type": "integer"},
        },
    }
    listing = {
        "type": "object",
        "required": ["object", "data"],
        "properties": {
            "object": {"const": "list"},
            "data": {"type": "array", "items": model_object},
        },
    }
    described = {
        paths.MODELS: {"get": oa.operation(
            "listModels", "The OpenAI models the caller may use.",
            {200: oa.json_reply("The models.", listing)} | failures)},
        paths.MODELS + "/{model}": {"get": oa.operation(
            "getModel", "One OpenAI model.",
            {200: oa.json_reply("The model.", model_object),
             404: p.error("No such model here.", openai=True)} | failures,
            [oa.path_parameter("model", MODEL_FIELD)])},
    }  # fmt: skip
    answer = {"type": "object"}
    for path in sorted(paths.OPENAI_PATHS):
        content = {oa.JSON: answer} | (
            {} if path.endswith("embeddings") else {p.EVENTS: p.SSE_EVENT}
        )
        responses = {
            200: oa.reply("The answer, or with stream the server-sent events.", content, REVISION),
            400: p.error("Invalid JSON, no model, or a field the runtime refuses.", openai=True),
            413: p.error("The body is over the gateway's or the model's limit.", openai=True),
            500: p.error("The model failed.", openai=True),
            504: p.error("Generation ran past the model's timeout.", openai=True),
        } | _model_failures(openai=True) | failures  # fmt: skip
        name = "create" + "".join(w.title() for w in path.removeprefix("/v1/").split("/"))
        described[path] = {"post": oa.operation(
            name, f"The OpenAI API's {path}.", responses, body=_openai_body(path))}  # fmt: skip
    return described


def _own_paths() -> dict[str, Schema]:
    ready = oa.json_reply("Whether the gateway knows its routes.", oa.ref("Ready"))
    own: list[tuple[str, str, str, dict[int, Schema]]] = [
        ("/v2", "getServerMetadata", "Server metadata.",
         {200: oa.json_reply("The server.", oa.ref("ServerMetadata"))}),
        ("/v2/health/live", "getLive", "Liveness.",
         {200: oa.json_reply("Live.", oa.ref("Live"))}),
        ("/v2/health/ready", "getReady", "Readiness: routes are known.", {200: ready, 503: ready}),
        ("/metrics", "getMetrics", "Prometheus metrics.",
         {200: oa.reply("The exposition.", {p.TEXT: oa.STRING})}),
        ("/openapi.json", "getOpenAPI", "This description.",
         {200: oa.json_reply("The description.", {"type": "object"})}),
    ]  # fmt: skip
    return {
        path: {"get": oa.operation(name, summary, responses, open_to_all=True)}
        for path, name, summary, responses in own
    }


def document(auth: bool, max_request_bytes: int) -> Schema:
    """The description as served: with ``auth``, every model request needs a bearer credential
    (an API key or a token) allowed to read the model's namespace."""
    name = oa.path_parameter("name", LABEL, "The model, in the default namespace.")
    namespaced = oa.path_parameter("name", NAMESPACED, "The model.")
    return oa.document(
        "modelplane gateway",
        __version__,
        "The Open Inference Protocol v2 and the OpenAI API for every model the platform serves, "
        f"routed to their replicas. Bodies up to {max_request_bytes} bytes.",
        _own_paths()
        | _v2_model_paths("/v2/models/{name}", [name], auth)
        | _v2_model_paths("/v2/models/{namespace}/{name}", [NAMESPACE, namespaced], auth)
        | _openai_paths(auth),
        p.components(),
        bearer=auth,
    )
