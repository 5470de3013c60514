"""Lets the portal's page call the gateway from the browser ("try it"): a cross-origin request
(CORS) is allowed when it comes from the control API's port on the very host the gateway was
reached at. The page at ``http://X:8090/`` may call ``http://X:8080``; a page elsewhere may
not, so a site on the internet cannot use a visitor's browser to reach a gateway on their
network."""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

ALLOWED_HEADERS = b"authorization, content-type, traceparent, tracestate"
EXPOSED_HEADERS = b"retry-after, x-modelplane-revision"


class PortalOrigin:
    def __init__(self, app: ASGIApp, portal_port: int) -> None:
        self.app, self.portal_port = app, portal_port

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope.get("headers", ())) if scope["type"] == "http" else {}
        origin = headers.get(b"origin")
        if origin is None or not self._allowed(origin, headers.get(b"host", b"")):
            await self.app(scope, receive, send)
            return
        allow = [(b"access-control-allow-origin", origin), (b"vary", b"Origin")]
        if scope["method"] == "OPTIONS" and b"access-control-request-method" in headers:
            preflight = [*allow, (b"access-control-allow-methods", b"GET, POST"),
                         (b"access-control-allow-headers", ALLOWED_HEADERS),
                         (b"access-control-max-age", b"600")]  # fmt: skip
            await send({"type": "http.response.start", "status": 204, "headers": preflight})
            await send({"type": "http.response.body", "body": b""})
            return

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                extra = [*allow, (b"access-control-expose-headers", EXPOSED_HEADERS)]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, sending)

    def _allowed(self, origin: bytes, host: bytes) -> bool:
        try:
            page = urlsplit(origin.decode("latin-1"))
            reached = urlsplit(f"//{host.decode('latin-1')}")
            return (
                page.scheme in ("http", "https")
                and page.port == self.portal_port
                and page.hostname is not None
                and page.hostname == reached.hostname
            )
        except ValueError:  # a malformed origin or host: not the portal
            return False
