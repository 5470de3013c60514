"""HTTP routes of the Open Inference Protocol v2 over the data plane, except ``infer``.

Errors take the protocol's ``{"error": "..."}`` body, with the status every adapter gives them
(``replies.py``). The ``infer`` hot path is a plain ASGI app in ``inference.py``.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from modelplane import __version__
from modelplane.errors import InferenceError
from modelplane.runtime.dataplane import DataPlane
from modelplane.runtime.replies import JSON, json_response, status_of
from modelplane.runtime.v2 import codec


def error_response(error: InferenceError) -> Response:
    return json_response({"error": str(error)}, status_of(error))


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
