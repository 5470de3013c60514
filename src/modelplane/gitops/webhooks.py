"""Git hosts' push webhooks: whether a call proves it holds a source's webhook secret, and
whether it is about the source's branch at all. The HTTP route that takes the calls is the
control API's (``modelplane.apiserver.git_webhook``).

A git host cannot send an API key, so the sender proves instead that it holds the secret: GitHub
signs the raw body (``X-Hub-Signature-256: sha256=<hex HMAC-SHA256>``), Gitea and Forgejo too
(``X-Gitea-Signature``, ``X-Forgejo-Signature``: the bare hex), GitLab sends the secret itself
(``X-Gitlab-Token``). A call about something other than a push (GitHub's ``ping`` when a hook is
made), or a push to another branch or to a tag, is ignored.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from urllib.parse import parse_qs

from modelplane.errors import UnauthenticatedError

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
