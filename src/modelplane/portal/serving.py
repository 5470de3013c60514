"""Routes that serve the portal: its page at ``/`` and its assets under ``/portal/``.

The assets are read once, with their compressed form and ETag, and answered from memory: they
are a few files that change only with the package, and the page should be usable at once. The
page carries the one setting it cannot learn from the control API, where the gateway is: on the
host the page was loaded from, at the gateway's port.
"""

from __future__ import annotations

import gzip
import hashlib
import html
from dataclasses import dataclass
from importlib.resources import files

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

STATIC = files("modelplane.portal") / "static"
ASSETS = {"portal.js": "text/javascript", "portal.css": "text/css", "uPlot.min.css": "text/css"}
# Only this origin's scripts and styles; the gateway is the one other place the page calls.
POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "connect-src 'self' {gateway}; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


@dataclass(frozen=True)
class Asset:
    body: bytes
    compressed: bytes
    media_type: str
    etag: str

    @classmethod
    def read(cls, name: str, media_type: str) -> Asset:
        body = (STATIC / name).read_bytes()
        digest = hashlib.sha256(body).hexdigest()[:16]
        return cls(body, gzip.compress(body, mtime=0), media_type, f'"{digest}"')

    def answer(self, request: Request) -> Response:
        headers = {"ETag": self.etag, "Cache-Control": "no-cache", "Vary": "Accept-Encoding"}
        if request.headers.get("if-none-match") == self.etag:
            return Response(status_code=304, headers=headers)
        if "gzip" in request.headers.get("accept-encoding", ""):
            headers["Content-Encoding"] = "gzip"
            return Response(self.compressed, media_type=self.media_type, headers=headers)
        return Response(self.body, media_type=self.media_type, headers=headers)


def portal_routes(gateway_port: int) -> list[BaseRoute]:
    page = (STATIC / "index.html").read_text()
    assets = {name: Asset.read(name, media_type) for name, media_type in ASSETS.items()}

    async def index(request: Request) -> Response:
        host = request.url.hostname or "127.0.0.1"
        gateway = f"{request.url.scheme}://{f'[{host}]' if ':' in host else host}:{gateway_port}"
        named = f'id="portal" data-gateway-url="{html.escape(gateway, quote=True)}"'
        headers = {
            "Content-Security-Policy": POLICY.format(gateway=gateway),
            "Cache-Control": "no-cache",
            "X-Content-Type-Options": "nosniff",
        }
        return HTMLResponse(page.replace('id="portal"', named), headers=headers)

    async def asset(request: Request) -> Response:
        found = assets.get(request.path_params["name"])
        if found is None:
            return Response("no such portal asset", status_code=404, media_type="text/plain")
        return found.answer(request)

    return [Route("/", index), Route("/portal/{name}", asset)]
