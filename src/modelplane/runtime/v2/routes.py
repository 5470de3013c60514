"""HTTP routes of the Open Inference Protocol v2 over the data plane.

Only this adapter knows HTTP: it reads bodies within the size limit, decodes, calls the data plane
and maps the error tree to status codes with ``{"error": "..."}`` bodies.
"""

from __future__ import annotations

import logging

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from modelplane import __version__
from modelplane.errors import (
    InferenceError,
    InvalidRequestError,
    ModelNotFoundError,
    ModelNotReadyError,
    PayloadTooLargeError,
)
from modelplane.runtime.dataplane import DataPlane
from modelplane.runtime.v2 import codec

log = logging.getLogger(__name__)

JSON = "application/json"
BINARY = "application/octet-stream"
_STATUS: list[tuple[type[InferenceError], int]] = [
    (PayloadTooLargeError, 413),
    (InvalidRequestError, 400),
    (ModelNotFoundError, 404),
    (ModelNotReadyError, 503),
]
OUTCOMES = {200: "success", 400: "invalid", 404: "not_found", 413: "too_large", 503: "unavailable"}


def status_of(error: InferenceError) -> int:
    for kind, status in _STATUS:
        if isinstance(error, kind):
            return status
    return 500


def json_response(document: object, status: int = 200) -> Response:
    return Response(orjson.dumps(document), status_code=status, media_type=JSON)


def error_response(error: InferenceError) -> Response:
    return json_response({"error": str(error)}, status_of(error))


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLargeError(f"request body of {declared} bytes exceeds the limit of {limit}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(f"request body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


class V2Routes:
    def __init__(self, dataplane: DataPlane, max_request_bytes: int) -> None:
        self.dataplane = dataplane
        self.max_request_bytes = max_request_bytes

    def routes(self) -> list[Route]:
        model = "/v2/models/{name}"
        version = model + "/versions/{version}"
        return [
            Route("/v2", self.server_metadata),
            Route("/v2/health/live", self.live),
            Route("/v2/health/ready", self.server_ready),
            Route(model, self.model_metadata),
            Route(version, self.model_metadata),
            Route(model + "/ready", self.model_ready),
            Route(version + "/ready", self.model_ready),
            Route(model + "/infer", self.infer, methods=["POST"]),
            Route(version + "/infer", self.infer, methods=["POST"]),
        ]

    async def server_metadata(self, request: Request) -> Response:
        return json_response(
            {"name": "modelplane", "version": __version__, "extensions": list(codec.EXTENSIONS)}
        )

    async def live(self, request: Request) -> Response:
        return json_response({"live": True})

    async def server_ready(self, request: Request) -> Response:
        try:
            self.dataplane.check_ready(self.dataplane.name)
        except InferenceError as exc:
            return error_response(exc)
        return json_response({"ready": True})

    async def model_metadata(self, request: Request) -> Response:
        name, version = _address(request)
        try:
            metadata = self.dataplane.metadata(name, version)
        except InferenceError as exc:
            return error_response(exc)
        return Response(codec.encode_metadata(metadata), media_type=JSON)

    async def model_ready(self, request: Request) -> Response:
        name, version = _address(request)
        try:
            self.dataplane.check_ready(name, version)
        except InferenceError as exc:
            return error_response(exc)
        return json_response({"name": name, "ready": True})

    async def infer(self, request: Request) -> Response:
        name, version = _address(request)
        with self.dataplane.scope() as scope:
            try:
                body = await read_body(request, self.max_request_bytes)
                decoded = codec.decode_request(body, request.headers.get(codec.HEADER_LENGTH))
                binary_default = codec.binary_output_default(decoded)
                response = await self.dataplane.infer(name, version, decoded, scope)
                content, header_length = codec.encode_response(
                    response, decoded.outputs, binary_default
                )
            except InferenceError as exc:
                reply = error_response(exc)
            except Exception as exc:
                log.exception("inference on %s failed unexpectedly", name)
                reply = json_response({"error": f"internal error: {exc!r}"}, 500)
            else:
                if header_length is None:
                    reply = Response(content, media_type=JSON)
                else:
                    reply = Response(
                        content,
                        media_type=BINARY,
                        headers={"Inference-Header-Content-Length": str(header_length)},
                    )
            self.dataplane.metrics.count(OUTCOMES.get(reply.status_code, "error"))
            return reply


def _address(request: Request) -> tuple[str, str | None]:
    params = request.path_params
    return params["name"], params.get("version")
