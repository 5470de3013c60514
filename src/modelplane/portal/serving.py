"""Routes that serve the portal: its page at ``/``, assets under ``/portal/``, and the one
setting the page cannot learn from the control API, where the gateway is."""

from __future__ import annotations

from importlib.resources import files

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

STATIC = files("modelplane.portal") / "static"
# Only this origin's scripts and styles; the gateway is the one other place the page calls.
POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "connect-src 'self' {gateway}; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


def portal_routes(gateway_url: str) -> list[BaseRoute]:
    page = (STATIC / "index.html").read_text()
    settings = {"gatewayUrl": gateway_url.rstrip("/")}

    async def index(_: Request) -> Response:
        headers = {
            "Content-Security-Policy": POLICY.format(gateway=settings["gatewayUrl"]),
            "Cache-Control": "no-cache",
            "X-Content-Type-Options": "nosniff",
        }
        return HTMLResponse(page, headers=headers)

    async def portal_settings(_: Request) -> Response:
        return JSONResponse(settings, headers={"Cache-Control": "no-cache"})

    return [
        Route("/", index),
        Route("/portal/settings.json", portal_settings),
        Mount("/portal", StaticFiles(directory=str(STATIC)), name="portal"),
    ]
