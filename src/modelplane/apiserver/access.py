"""Who may call which endpoint of the embedded control API.

Every request but ``/healthz``, ``/openapi.json``, the portal's page and assets and a git
host's push webhook (``POST /gitops/{name}/webhook``, which checks the source's own secret
instead: ``gitops_webhook.py``) is authenticated (``Authorization: Bearer <API key>``) and
checked against the role its path and method need: reading a namespace's Models, their
status, events, revisions, logs, metrics, releases, usage and quota needs ``viewer`` there;
writing them ``deployer``; writing status, git sources, quotas and API keys, and taking a
backup, ``admin`` on every namespace.
Listing or watching Models across namespaces (and the release and usage reports of every
namespace) shows only the namespaces the caller may read. A
refusal is a Kubernetes-style Status: 401 with ``WWW-Authenticate: Bearer`` for a missing or bad
credential, 403 naming the role needed.
"""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from modelplane.apiserver.http import status_response
from modelplane.apiserver.metric_history import METRICS_PREFIX
from modelplane.apiserver.releases import RELEASES_PREFIX
from modelplane.apiserver.server import PREFIX
from modelplane.apiserver.usage import USAGE_PREFIX
from modelplane.errors import AuthError, UnauthenticatedError
from modelplane.security.authn import Authenticator, require
from modelplane.security.roles import ALL_NAMESPACES, Action

# Liveness, the API's description and the portal's page and assets: none of them holds data.
OPEN_PATHS = frozenset({"/healthz", "/openapi.json", "/"})
OPEN_PREFIXES = ("/portal/",)
# A git host's push to one source (POST): it proves itself with that source's secret.
OPEN_WEBHOOK = re.compile(r"/gitops/[^/]+/webhook")
READING = frozenset({"GET", "HEAD"})


def needed(method: str, path: str) -> tuple[Action, str | None]:
    """The action a request is and the namespace it needs it in; None: decided by the handler
    (lists across namespaces, filtered to what the caller may read)."""
    reading = method in READING
    for group in (PREFIX, METRICS_PREFIX, RELEASES_PREFIX, USAGE_PREFIX):
        namespaced = f"{group}/namespaces/"
        if path.startswith(namespaced):
            namespace = path[len(namespaced) :].split("/", 1)[0]
            if reading:
                return Action.READ, namespace
            return (Action.ADMINISTER if path.endswith("/status") else Action.WRITE), namespace
        if path in (f"{group}/models", f"{group}/releases", f"{group}/usage") and reading:
            return Action.READ, None
    if path.startswith("/quotas/") and reading:
        return Action.READ, path.removeprefix("/quotas/").split("/", 1)[0]
    if path == "/quotas" and reading:
        return Action.READ, ALL_NAMESPACES
    if path.startswith("/gitops"):
        if reading:
            return Action.READ, ALL_NAMESPACES
        syncing = path == "/gitops/webhook" or path.endswith("/sync")
        return (Action.WRITE if syncing else Action.ADMINISTER), ALL_NAMESPACES
    return Action.ADMINISTER, ALL_NAMESPACES  # keys, and anything not named above


def is_open(method: str, path: str) -> bool:
    """Whether a request is served without a credential."""
    if path in OPEN_PATHS or path.startswith(OPEN_PREFIXES):
        return True
    return method == "POST" and OPEN_WEBHOOK.fullmatch(path) is not None


class AccessControl:
    """ASGI middleware: authenticate, authorise by ``needed``, and leave the principal in
    ``scope["state"]["principal"]`` for handlers that filter by it."""

    def __init__(self, app: ASGIApp, authenticator: Authenticator) -> None:
        self.app, self.authenticator = app, authenticator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or is_open(scope["method"], path):
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        try:
            principal = self.authenticator.principal(request.headers.get("authorization"))
            action, namespace = needed(scope["method"], scope["path"])
            if namespace is not None:
                require(principal, action, namespace)
        except AuthError as exc:
            await refusal(exc)(scope, receive, send)
            return
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)


def refusal(error: AuthError) -> Response:
    if isinstance(error, UnauthenticatedError):
        reply = status_response(401, "Unauthorized", str(error))
        reply.headers["WWW-Authenticate"] = 'Bearer realm="modelplane"'
        return reply
    return status_response(403, "Forbidden", str(error))
