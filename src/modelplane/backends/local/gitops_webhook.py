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

import hashlib
import hmac
import json
import logging
from collections.abc import Mapping
from urllib.parse import parse_qs

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from modelplane.backends.local.api_server import error_response, status_response
from modelplane.backends.local.gitops import GitSync
from modelplane.errors import (
    ForbiddenError,
    ModelplaneError,
    NotFoundError,
    PayloadTooLargeError,
    UnauthenticatedError,
)

log = logging.getLogger(__name__)

MAX_BODY = 5 * 1024 * 1024  # GitHub's push payloads stay far below, even with many commits
# (header, what precedes the hex digest), in the order they are looked for.
SIGNATURES = (("X-Hub-Signature-256", "sha256="), ("X-Gitea-Signature", ""),
              ("X-Forgejo-Signature", ""))  # fmt: skip
GITLAB_HEADER = "X-Gitlab-Token"
EVENTS = ("X-GitHub-Event", "X-Gitea-Event", "X-Forgejo-Event", "X-Gitlab-Event")
PUSHES = frozenset({"push", "Push Hook"})
EXPECTED = (
    "X-Hub-Signature-256 (GitHub), X-Gitea-Signature or X-Forgejo-Signature (Gitea, Forgejo), "
    "or X-Gitlab-Token (GitLab)"
)


def verify(secret: str, headers: Mapping[str, str], body: bytes) -> None:
    """Return if the first of the known headers present proves its sender holds ``secret``;
    else UnauthenticatedError naming the header."""
    key = secret.encode()
    for header, prefix in SIGNATURES:
        given = headers.get(header)
        if given is not None:
            wanted = prefix + hmac.new(key, body, hashlib.sha256).hexdigest()
            if not _same(wanted, given):
                raise UnauthenticatedError(
                    f"{header} is not the HMAC-SHA256 of the body with this source's webhook "
                    f"secret{' (sha256=<hex>)' if prefix else ' (hex)'}"
                )
            return
    token = headers.get(GITLAB_HEADER)
    if token is None:
        raise UnauthenticatedError(f"no signature: expected {EXPECTED}")
    if not _same(secret, token):
        raise UnauthenticatedError(f"{GITLAB_HEADER} is not this source's webhook secret")


def _same(wanted: str, given: str) -> bool:
    # In constant time; a header is read as latin-1, so encoding it back gives its very bytes.
    return hmac.compare_digest(wanted.encode(), given.encode("latin-1"))


def ignored(headers: Mapping[str, str], body: bytes, branch: str) -> str | None:
    """Why a verified call syncs nothing (not a push, a push elsewhere), or None: sync."""
    event = next((headers[h] for h in EVENTS if h in headers), None)
    if event == "ping":
        return f"GitHub's ping: the webhook is signed right; a push to {branch} syncs"
    if event is not None and event not in PUSHES:
        return f"a {event!r} event, not a push"
    ref = _ref(body, headers.get("content-type", ""))
    if ref is not None and ref != f"refs/heads/{branch}":
        return f"a push to {ref[:300]}; this source follows refs/heads/{branch}"
    return None


def _ref(body: bytes, content_type: str) -> str | None:
    """The ``ref`` a push event names, JSON or form-encoded (GitHub's ``payload=``); None when
    the body is not such an event."""
    text = body.decode("utf-8", "replace")
    if content_type.startswith("application/x-www-form-urlencoded"):
        text = parse_qs(text).get("payload", [""])[0]
    try:
        event = json.loads(text)
    except (ValueError, RecursionError):
        return None
    ref = event.get("ref") if isinstance(event, dict) else None
    return ref if isinstance(ref, str) else None


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
