"""HTTP routes of the Open Inference Protocol v2 over the data plane, except ``infer``.

Only this adapter knows HTTP: it maps the error tree to status codes with ``{"error": "..."}``
bodies. The ``infer`` hot path is a plain ASGI app in ``inference.py`` that shares this mapping.
"""

from __future__ import annotations

import orjson
from starlette.exceptions import HTTPException
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

JSON = "application/json"
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


async def routing_error(request: Request, exc: Exception) -> Response:
    """Routing's own refusals (no such path; a method the path does not take, with ``Allow``)
    as JSON in the shape of the path's protocol, like every other answer, not as plain text."""
    assert isinstance(exc, HTTPException)  # the only kind this handler is registered for
    path, headers = request.url.path, dict(exc.headers or {})
    allowed = headers.get("Allow")
    if exc.status_code == 405 and allowed:
        allowed = headers["Allow"] = ", ".join(sorted(allowed.split(", ")))  # a set's order
        message = f"{path} takes {allowed}, not {request.method}"
    elif exc.status_code == 404:
        message = f"no route for {path}"
    else:
        message = str(exc.detail)
    document: dict[str, object] = {"error": message}
    if path.startswith("/v1/"):  # the OpenAI API's error object
        document["error"] = {"message": message, "type": "invalid_request_error",
                             "param": None, "code": None}  # fmt: skip
    return Response(orjson.dumps(document), exc.status_code, headers, media_type=JSON)


class V2Routes:
    def __init__(self, dataplane: DataPlane) -> None:
        self.dataplane = dataplane

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


def _address(request: Request) -> tuple[str, str | None]:
    params = request.path_params
    return params["name"], params.get("version")
