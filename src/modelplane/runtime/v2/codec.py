"""Open Inference Protocol v2 REST encoding: JSON bodies and the binary tensor data extension.

Decoding checks everything that can be checked without the model: well-formed JSON, known
datatypes, shapes matching element counts, binary segments that add up to the body. Checks against
the model's own inputs happen in the data plane, the same for every protocol.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import orjson

from modelplane.errors import InvalidRequestError
from modelplane.runtime import datatypes
from modelplane.runtime.types import (
    InferenceRequest,
    InferenceResponse,
    ModelMetadata,
    RequestedOutput,
    Tensor,
    TensorSpec,
)

HEADER_LENGTH = "inference-header-content-length"
EXTENSIONS = ("binary_tensor_data",)
_JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY


def decode_request(body: bytes, header_length: str | None) -> InferenceRequest:
    json_part, binary = _split_body(body, header_length)
    try:
        document = orjson.loads(json_part)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequestError(f"request body is not valid JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise InvalidRequestError("request body must be a JSON object with an 'inputs' list")
    raw_inputs = document.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise InvalidRequestError("request needs a non-empty 'inputs' list")
    offset = 0
    inputs = []
    for index, raw in enumerate(raw_inputs):
        tensor, offset = _decode_input(raw, index, binary, offset)
        inputs.append(tensor)
    if offset != len(binary):
        raise InvalidRequestError(
            f"binary data is {len(binary)} bytes but the inputs' binary_data_size add up to "
            f"{offset}"
        )
    _reject_duplicates([t.name for t in inputs], "input")
    return InferenceRequest(
        inputs=inputs,
        id=_optional_str(document.get("id"), "id"),
        parameters=_parameters(document.get("parameters"), "request"),
        outputs=_decode_outputs(document.get("outputs")),
    )


def _split_body(body: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    if header_length is None:
        return body, b""
    try:
        length = int(header_length)
    except ValueError:
        length = -1
    if not 0 <= length <= len(body):
        raise InvalidRequestError(
            f"Inference-Header-Content-Length is {header_length!r}, but the body has "
            f"{len(body)} bytes"
        )
    return body[:length], body[length:]


def _decode_input(raw: Any, index: int, binary: bytes, offset: int) -> tuple[Tensor, int]:
    if not isinstance(raw, dict):
        raise InvalidRequestError(f"inputs[{index}] must be an object")
    name = raw.get("name")
    where = f"input {name!r}" if isinstance(name, str) else f"inputs[{index}]"
    if not isinstance(name, str) or not name:
        raise InvalidRequestError(f"{where}: 'name' must be a non-empty string")
    datatype = raw.get("datatype")
    if not isinstance(datatype, str):
        raise InvalidRequestError(f"{where}: 'datatype' must be a string")
    datatypes.check_datatype(datatype, where)
    shape = _shape(raw.get("shape"), where)
    count = math.prod(shape)
    parameters = _parameters(raw.get("parameters"), where)
    size = parameters.pop("binary_data_size", None)
    if size is not None:
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise InvalidRequestError(f"{where}: binary_data_size must be a non-negative integer")
        if "data" in raw:
            raise InvalidRequestError(f"{where}: has both 'data' and binary_data_size")
        if offset + size > len(binary):
            raise InvalidRequestError(
                f"{where}: binary_data_size {size} runs past the end of the binary data "
                f"({len(binary) - offset} bytes left)"
            )
        flat = datatypes.from_binary(binary[offset : offset + size], datatype, count, where)
        offset += size
    elif "data" in raw:
        flat = datatypes.from_json_data(raw["data"], datatype, where)
        if flat.size != count:
            raise InvalidRequestError(
                f"{where}: shape {list(shape)} needs {count} elements, data has {flat.size}"
            )
    else:
        raise InvalidRequestError(f"{where}: needs 'data' or parameters.binary_data_size")
    return Tensor(name, datatype, flat.reshape(shape), parameters), offset


def _shape(raw: Any, where: str) -> tuple[int, ...]:
    if not isinstance(raw, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in raw
    ):
        raise InvalidRequestError(f"{where}: 'shape' must be a list of non-negative integers")
    return tuple(raw)


def _decode_outputs(raw: Any) -> list[RequestedOutput] | None:
    if raw is None:
        return None
    if not isinstance(raw, list):
        raise InvalidRequestError("'outputs' must be a list")
    outputs = []
    for index, item in enumerate(raw):
        name = item.get("name") if isinstance(item, dict) else None
        if not isinstance(name, str) or not name:
            raise InvalidRequestError(f"outputs[{index}] needs a 'name'")
        parameters = _parameters(item.get("parameters"), f"output {name!r}")
        binary = parameters.pop("binary_data", None)
        if binary is not None and not isinstance(binary, bool):
            raise InvalidRequestError(f"output {name!r}: binary_data must be true or false")
        outputs.append(RequestedOutput(name, binary, parameters))
    _reject_duplicates([o.name for o in outputs], "output")
    return outputs


def _parameters(raw: Any, where: str) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise InvalidRequestError(f"{where}: 'parameters' must be an object")
    return dict(raw)


def _optional_str(raw: Any, field: str) -> str | None:
    if raw is not None and not isinstance(raw, str):
        raise InvalidRequestError(f"'{field}' must be a string")
    return raw


def _reject_duplicates(names: list[str], what: str) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise InvalidRequestError(f"{what} {name!r} appears more than once")
        seen.add(name)


def encode_response(
    response: InferenceResponse,
    requested: list[RequestedOutput] | None,
    binary_default: bool,
) -> tuple[bytes, int | None]:
    """The response body and, when any output is binary, the JSON header's length."""
    wants_binary = {o.name: o.binary for o in requested or ()}
    blobs: list[bytes] = []
    outputs = []
    for tensor in response.outputs:
        binary = wants_binary.get(tensor.name)
        if binary is None:
            binary = binary_default
        entry: dict[str, Any] = {
            "name": tensor.name,
            "datatype": tensor.datatype,
            "shape": list(tensor.shape),
        }
        parameters = dict(tensor.parameters)
        if binary:
            blob = datatypes.to_binary(tensor.data)
            parameters["binary_data_size"] = len(blob)
            blobs.append(blob)
        else:
            entry["data"] = datatypes.to_json_data(tensor.data, f"output {tensor.name!r}")
        if parameters:
            entry["parameters"] = parameters
        outputs.append(entry)
    document: dict[str, Any] = {
        "model_name": response.model_name,
        "model_version": response.model_version,
        "outputs": outputs,
    }
    if response.id is not None:
        document["id"] = response.id
    if response.parameters:
        document["parameters"] = response.parameters
    header = orjson.dumps(document, option=_JSON_OPTIONS)
    if not blobs:
        return header, None
    return header + b"".join(blobs), len(header)


def encode_metadata(metadata: ModelMetadata) -> bytes:
    def specs(items: tuple[TensorSpec, ...]) -> list[Mapping[str, Any]]:
        return [{"name": s.name, "datatype": s.datatype, "shape": list(s.shape)} for s in items]

    return orjson.dumps(
        {
            "name": metadata.name,
            "versions": list(metadata.versions),
            "platform": metadata.platform,
            "inputs": specs(metadata.inputs),
            "outputs": specs(metadata.outputs),
        }
    )


def binary_output_default(request: InferenceRequest) -> bool:
    value = request.parameters.pop("binary_data_output", False)
    if not isinstance(value, bool):
        raise InvalidRequestError("parameters.binary_data_output must be true or false")
    return value
