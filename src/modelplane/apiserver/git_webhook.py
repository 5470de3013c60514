"""``POST /gitops/{name}/webhook``: a git host's push webhook for one source, signed with the
source's webhook secret.

A git host cannot send an API key, so under ``--auth`` this route is open (``access.py``) and the
sender proves instead that it holds the secret: GitHub signs the raw body (``X-Hub-Signature-256:
sha256=<hex HMAC-SHA256>``), Gitea and Forgejo too (``X-Gitea-Signature``,
``X-Forgejo-Signature``: the bare hex), GitLab sends the secret itself (``X-Gitlab-Token``). A
source with a secret always checks it. A source without one is refused under ``--auth``; without
``--auth`` it syncs on an unsigned call, as ``POST /gitops/{name}/sync`` does for anyone there.

A verified call syncs the source unless it says it is about something else: an event other than
a push (GitHub's ``ping`` when a hook is made), or a push to another branch or to a tag. Either
way it only wakes the source, which fetches the branch itself: the body never says what to apply.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from modelplane.apiserver.http import error_response, status_response
from modelplane.errors import (
    ForbiddenError,
    ModelplaneError,
    NotFoundError,
    PayloadTooLargeError,
    UnauthenticatedError,
)
from modelplane.gitops.sync import GitSync
from modelplane.gitops.webhooks import ignored, verify

log = logging.getLogger(__name__)

MAX_BODY = 5 * 1024 * 1024  # GitHub's push payloads stay far below, even with many commits


async def _body(request: Request) -> bytes:
    """The body, read no further than ``MAX_BODY``."""
    too_large = PayloadTooLargeError(f"the body is over the limit of {MAX_BODY} bytes")
    declared = request.headers.get("content-length", "")
    if declared.isdecimal() and int(declared) > MAX_BODY:
        raise too_large
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


async def _checked(request: Request, sync: GitSync, auth: bool) -> bytes:
    """The body of a call the source may take, or the error that refuses it."""
    secret = sync.spec.webhook_secret
    if secret is None and auth:
        raise ForbiddenError(
            f"git source {sync.spec.name!r} has no webhook secret: add it again with "
            "`modelplane gitops add ... --webhook-secret-file FILE` (gitops remove first) and "
            "give the git host the same secret"
        )
    body = await _body(request)
    if secret is not None:
        verify(secret, request.headers, body)
    return body


_REFUSALS: list[tuple[type[ModelplaneError], int, str]] = [
    (UnauthenticatedError, 401, "Unauthorized"),
    (ForbiddenError, 403, "Forbidden"),
    (PayloadTooLargeError, 413, "RequestEntityTooLarge"),
]


def _refusal(error: ModelplaneError) -> Response:
    for kind, code, reason in _REFUSALS:
        if isinstance(error, kind):
            return status_response(code, reason, str(error))
    return error_response(error)


def webhook_route(syncs: Mapping[str, GitSync], auth: bool) -> Route:
    """The route, over the platform's sources by name; ``auth``: the platform runs with
    ``--auth`` (a source without a secret is then refused)."""

    async def webhook(request: Request) -> Response:
        name = request.path_params["name"]
        try:
            sync = syncs.get(name)
            if sync is None:
                raise NotFoundError(f"git source {name!r} not found")
            body = await _checked(request, sync, auth)
        except ClientDisconnect:  # the sender left mid-body: nobody to answer, nothing synced
            log.debug("webhook for git source %r: the sender left before its body ended", name)
            return Response(status_code=400)
        except (NotFoundError, ForbiddenError, UnauthenticatedError, PayloadTooLargeError) as exc:
            sender = request.client.host if request.client else "?"
            log.warning("webhook for git source %r from %s refused: %s", name, sender, exc)
            return _refusal(exc)
        why = ignored(request.headers, body, sync.spec.branch)
        if why is not None:
            log.info("webhook for git source %r ignored: %s", name, why)
            return JSONResponse({"syncing": [], "ignored": why}, status_code=202)
        sync.wake()
        return JSONResponse({"syncing": [name]}, status_code=202)

    return Route("/gitops/{name}/webhook", webhook, methods=["POST"])
