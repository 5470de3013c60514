"""The data plane's wire shapes as JSON Schemas, plain data: the Open Inference Protocol v2
(KServe v2) bodies, both protocols' error objects and the replies built of them.

The runtime and the gateway each describe their HTTP API as ``GET /openapi.json`` from these, so
the two descriptions of one protocol agree although neither may import the other. Each side lists
its own operations and the status codes it answers; only the shapes and the wording live here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from modelplane.api.openapi import JSON, STRING, Schema, header, json_reply, ref, reply

BINARY = "application/octet-stream"
EVENTS = "text/event-stream"
TEXT = "text/plain"
HEADER_LENGTH = "Inference-Header-Content-Length"
# The protocol's tensor datatypes; BF16 is taken wherever FP32 is (widened without loss).
DATATYPES = ("BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
             "FP16", "FP32", "FP64", "BF16", "BYTES")  # fmt: skip


def _object(required: Iterable[str], **properties: Schema) -> Schema:
    return {"type": "object", "required": list(required), "properties": properties}


NAME: Schema = {"type": "string", "minLength": 1}
NULLABLE_STRING: Schema = {"type": ["string", "null"]}
# Row-major values, flat or nested as the shape; strings for BYTES, JSON numbers or booleans
# for the others. That their count is the product of the shape is more than JSON Schema says.
TENSOR_DATA: Schema = {"type": "array", "items": {"type": ["number", "boolean", "string", "array"]}}
COUNT: Schema = {"type": "integer", "minimum": 0}
SHAPE: Schema = {"type": "array", "items": COUNT}


# One server-sent event, as OpenAPI 3.1 describes an event stream: each ``data`` a JSON chunk,
# an error object, or ``[DONE]``.
SSE_EVENT: Schema = {
    "type": "object",
    "required": ["data"],
    "properties": {"data": STRING, "event": STRING, "id": STRING, "retry": {"type": "integer"}},
}


def request_input(name: Schema, datatype: Schema, shape: Schema) -> Schema:
    """One input tensor of an inference request, as JSON (``data``)."""
    return {
        "type": "object",
        "required": ["name", "datatype", "shape", "data"],
        "properties": {
            "name": name,
            "datatype": datatype,
            "shape": shape,
            "data": TENSOR_DATA,
            "parameters": {"type": ["object", "null"]},
        },
    }


ANY_INPUT = request_input(NAME, {"enum": list(DATATYPES)}, SHAPE)


def inference_request(inputs: Schema) -> Schema:
    """A request with ``inputs`` (the array's schema); ``null`` stands for an absent field."""
    return {
        "type": "object",
        "required": ["inputs"],
        "properties": {
            "id": NULLABLE_STRING,
            "parameters": {
                "type": ["object", "null"],
                "properties": {"binary_data_output": {"type": "boolean"}},
            },
            "inputs": inputs,
            "outputs": {
                "type": ["array", "null"],
                "items": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {
                        "name": NAME,
                        "parameters": {
                            "type": ["object", "null"],
                            "properties": {"binary_data": {"type": "boolean"}},
                        },
                    },
                },
            },
        },
    }


_TENSOR_METADATA = _object(
    ["name", "datatype", "shape"],
    name=STRING,
    datatype={"enum": list(DATATYPES)},
    shape={"type": "array", "items": {"type": "integer", "minimum": -1}},  # -1: any size
)
_RESPONSE_OUTPUT = {
    "type": "object",
    "required": ["name", "datatype", "shape"],
    "properties": {
        "name": STRING,
        "datatype": {"enum": list(DATATYPES)},
        "shape": SHAPE,
        "data": {"type": "array"},  # absent when the output is binary
        "parameters": {"type": "object", "properties": {"binary_data_size": COUNT}},
    },
}
OPENAI_ERROR = _object(
    ["error"],
    error=_object(
        ["message", "type", "param", "code"],
        message=STRING,
        type=STRING,
        param=NULLABLE_STRING,
        code=NULLABLE_STRING,
    ),
)


def components() -> dict[str, Schema]:
    """The v2 and error schemas both descriptions refer to."""
    return {
        "Error": _object(["error"], error=STRING),
        "OpenAIError": OPENAI_ERROR,
        "ServerMetadata": _object(
            ["name", "version", "extensions"],
            name=STRING,
            version=STRING,
            extensions={"type": "array", "items": STRING},
        ),
        "Live": _object(["live"], live={"type": "boolean"}),
        "Ready": _object(["ready"], ready={"type": "boolean"}),
        "ModelReady": _object(["name", "ready"], name=STRING, ready={"type": "boolean"}),
        "TensorMetadata": _TENSOR_METADATA,
        "ModelMetadata": _object(
            ["name", "versions", "platform", "inputs", "outputs"],
            name=STRING,
            versions={"type": "array", "items": STRING},
            platform=STRING,
            inputs={"type": "array", "items": ref("TensorMetadata")},
            outputs={"type": "array", "items": ref("TensorMetadata")},
        ),
        "InferenceResponse": {
            "type": "object",
            "required": ["model_name", "model_version", "outputs"],
            "properties": {
                "model_name": STRING,
                "model_version": STRING,
                "id": STRING,
                "parameters": {"type": "object"},
                "outputs": {"type": "array", "items": _RESPONSE_OUTPUT},
            },
        },
    }


# -- replies --------------------------------------------------------------------------------


def error(about: str, openai: bool = False, headers: Mapping[str, Schema] | None = None) -> Schema:
    """A refusal, in the v2 shape ``{"error": "..."}`` or the OpenAI API's error object."""
    return json_reply(about, ref("OpenAIError" if openai else "Error"), headers)


# Path parameters given values their schemas exclude (one holding "/", say) can spell another
# operation's path, and that operation may not take this method.
ANOTHER_PATH = error(
    "The parameters spell another operation's path, which does not take this method.",
    headers={"Allow": header("The methods that path takes.", required=True)},
)


def infer_reply(headers: Mapping[str, Schema] | None = None) -> Schema:
    """A v2 inference's answer: JSON, or with any binary output the binary extension (the JSON
    part, its length in a header, then each binary output's bytes)."""
    return reply(
        "The outputs; binary ones (asked for with parameters.binary_data_output or an output's "
        f"binary_data) follow the JSON part, whose length {HEADER_LENGTH} gives.",
        {JSON: ref("InferenceResponse"), BINARY: {"type": "string", "format": "binary"}},
        {HEADER_LENGTH: header("Bytes of the JSON part (binary answers only).", COUNT),
         **(headers or {})},
    )  # fmt: skip
