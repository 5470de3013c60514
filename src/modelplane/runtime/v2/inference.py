"""The v2 ``infer`` endpoint as a plain ASGI app: the runtime's hot path.

It sits in front of the Starlette app that serves every other route, so an inference request
skips routing tables, middleware and request/response objects; everything else (metadata, health,
metrics) goes through Starlette as usual.
"""

from __future__ import annotations

import logging

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from modelplane.errors import ClientGoneError, InferenceError
from modelplane.runtime.dataplane import DataPlane
from modelplane.runtime.receiving import read_body
from modelplane.runtime.replies import status_of
from modelplane.runtime.v2 import codec

log = logging.getLogger(__name__)

_JSON = [(b"content-type", b"application/json")]
_BINARY = [(b"content-type", b"application/octet-stream")]
_CONTENT_LENGTH = b"content-length"
_HEADER_LENGTH = codec.HEADER_LENGTH.encode()


def infer_address(path: str) -> tuple[str, str | None] | None:
    """``(name, version)`` for ``/v2/models/{name}[/versions/{v}]/infer``, else None."""
    parts = path.split("/")
    if len(parts) == 5 and parts[1:3] == ["v2", "models"] and parts[4] == "infer":
        return parts[3], None
    if len(parts) == 7 and parts[1:3] == ["v2", "models"] and parts[4] == "versions":
        return (parts[3], parts[5]) if parts[6] == "infer" else None
    return None


class InferEndpoint:
    def __init__(self, dataplane: DataPlane, max_request_bytes: int, fallback: ASGIApp) -> None:
        self.dataplane = dataplane
        self.max_request_bytes = max_request_bytes
        self.fallback = fallback

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        address = infer_address(scope["path"]) if scope["type"] == "http" else None
        if address is None:
            await self.fallback(scope, receive, send)
        elif scope["method"] == "POST":
            await self._infer(address, scope, receive, send)
        else:
            message = _error(f"{scope['path']} takes POST, not {scope['method']}")
            await _send(send, 405, [*_JSON, (b"allow", b"POST")], message)

    async def _infer(
        self, address: tuple[str, str | None], scope: Scope, receive: Receive, send: Send
    ) -> None:
        name, version = address
        with self.dataplane.scope() as request_scope:
            try:
                body = await read_body(scope, receive, self.max_request_bytes)
                decoded = codec.decode_request(body, _header_length(scope))
                binary_default = codec.binary_output_default(decoded)
                response = await self.dataplane.infer(name, version, decoded, request_scope)
                content, json_length = codec.encode_response(
                    response, decoded.outputs, binary_default
                )
            except ClientGoneError:
                return  # no one to answer
            except InferenceError as exc:
                request_scope.refused(exc)
                status, headers, content = status_of(exc), _JSON, _error(str(exc))
            except Exception as exc:
                log.exception("inference on %s failed unexpectedly", name)
                request_scope.refused(exc)
                status, headers, content = 500, _JSON, _error(f"internal error: {exc!r}")
            else:
                request_scope.served()
                status = 200
                headers = _JSON
                if json_length is not None:
                    headers = [*_BINARY, (_HEADER_LENGTH, str(json_length).encode())]
        await _send(send, status, headers, content)


def _header_length(scope: Scope) -> str | None:
    """The binary tensor extension's length of the body's JSON part, if the request has one."""
    for key, value in scope["headers"]:
        if key == _HEADER_LENGTH:
            return str(value.decode("latin-1"))
    return None


def _error(message: str) -> bytes:
    return orjson.dumps({"error": message})


async def _send(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    length = (_CONTENT_LENGTH, str(len(body)).encode())
    await send({"type": "http.response.start", "status": status, "headers": [*headers, length]})
    await send({"type": "http.response.body", "body": body})
