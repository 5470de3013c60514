"""A git host's push webhook for one source, in process: who may sync it (a GitHub, Gitea or
Forgejo signature, a GitLab token; without ``--auth``, anyone while the source has no secret),
which calls sync nothing (another branch, a tag, a ping, another event), the body's cap, and the
secret kept out of every reply, error and listing."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import stat
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from modelplane.apiserver.access import is_open
from modelplane.apiserver.git_sources import gitops_routes
from modelplane.apiserver.git_webhook import MAX_BODY
from modelplane.errors import SpecError
from modelplane.gitops.sources import GitSources, parse_source

SHARED_KEY = "It's a secret to everybody 0123"
PUSH = json.dumps({"ref": "refs/heads/main", "after": "0" * 40}).encode()


Headers = Mapping[str, str] | Mapping[bytes, bytes]


def _signed(body: bytes, secret: str = SHARED_KEY) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _client(tmp_path: Path, auth: bool) -> Iterator[TestClient]:
    sources = GitSources(tmp_path, "http://127.0.0.1:1", lambda *_: None)
    spec = {"name": "signed", "url": str(tmp_path / "repo"), "webhookSecret": SHARED_KEY}
    sources.add(parse_source(spec))
    sources.add(parse_source({"name": "unsigned", "url": str(tmp_path / "repo")}))
    with TestClient(Starlette(routes=gitops_routes(sources, auth=auth))) as client:
        yield client


@pytest.fixture
def guarded(tmp_path: Path) -> Iterator[TestClient]:
    yield from _client(tmp_path, auth=True)


@pytest.fixture
def open_platform(tmp_path: Path) -> Iterator[TestClient]:
    yield from _client(tmp_path, auth=False)


def _push(client: TestClient, headers: Headers, body: bytes = PUSH,
          name: str = "signed") -> tuple[int, dict[str, Any]]:  # fmt: skip
    reply = client.post(f"/gitops/{name}/webhook", content=body, headers=headers)
    return reply.status_code, reply.json()


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Hub-Signature-256": f"sha256={_signed(PUSH)}", "X-GitHub-Event": "push"},
        {"X-Gitea-Signature": _signed(PUSH), "X-Gitea-Event": "push"},
        {"X-Forgejo-Signature": _signed(PUSH), "X-Forgejo-Event": "push"},
        {"X-Gitlab-Token": SHARED_KEY, "X-Gitlab-Event": "Push Hook"},
        {"X-Hub-Signature-256": f"sha256={_signed(PUSH)}"},  # no event named: a push
    ],
    ids=["github", "gitea", "forgejo", "gitlab", "no-event"],
)
def test_each_hosts_proof_syncs_the_source(guarded: TestClient, headers: dict[str, str]) -> None:
    assert _push(guarded, headers) == (202, {"syncing": ["signed"]})


@pytest.mark.parametrize(
    ("headers", "named"),
    [
        ({}, "no signature: expected X-Hub-Signature-256 (GitHub)"),
        ({"X-Hub-Signature-256": _signed(PUSH)}, "X-Hub-Signature-256 is not the HMAC-SHA256"),
        (
            {"X-Hub-Signature-256": f"sha256={_signed(PUSH, SHARED_KEY + 'x')}"},
            "X-Hub-Signature-256",
        ),
        ({"X-Hub-Signature-256": f"sha256={_signed(b'{}')}"}, "X-Hub-Signature-256"),
        ({"X-Gitea-Signature": f"sha256={_signed(PUSH)}"}, "X-Gitea-Signature is not"),
        ({"X-Gitlab-Token": SHARED_KEY[:-1]}, "X-Gitlab-Token is not this source's webhook secret"),
        # A signature checked wrong is not rescued by a right token.
        ({"X-Forgejo-Signature": "00", "X-Gitlab-Token": SHARED_KEY}, "X-Forgejo-Signature"),
        ({b"X-Gitlab-Token": ("é" * 20).encode()}, "X-Gitlab-Token"),  # refused, not a crash
    ],
)
def test_a_call_without_the_secret_is_refused_and_syncs_nothing(
    guarded: TestClient, headers: Headers, named: str
) -> None:
    code, status = _push(guarded, headers)
    assert code == 401
    assert status["reason"] == "Unauthorized"
    assert named in status["message"]
    assert SHARED_KEY not in json.dumps(status)


@pytest.mark.parametrize(
    ("headers", "body", "why"),
    [
        ({"X-GitHub-Event": "ping"}, b'{"zen": "Keep it logically awesome."}', "GitHub's ping"),
        ({"X-GitHub-Event": "pull_request"}, PUSH, "a 'pull_request' event, not a push"),
        ({"X-Gitlab-Event": "Tag Push Hook"}, PUSH, "'Tag Push Hook' event"),
        ({}, b'{"ref": "refs/heads/dev"}', "a push to refs/heads/dev; this source follows "
         "refs/heads/main"),
        ({}, b'{"ref": "refs/tags/v1"}', "a push to refs/tags/v1"),
        ({"Content-Type": "application/x-www-form-urlencoded"},
         b"payload=%7B%22ref%22%3A%20%22refs%2Fheads%2Fdev%22%7D", "a push to refs/heads/dev"),
    ],
)  # fmt: skip
def test_what_is_not_a_push_to_the_branch_is_answered_and_ignored(
    guarded: TestClient, headers: dict[str, str], body: bytes, why: str
) -> None:
    headers = {**headers, "X-Hub-Signature-256": f"sha256={_signed(body)}"}
    code, reply = _push(guarded, headers, body)
    assert code == 202
    assert reply["syncing"] == []
    assert why in reply["ignored"]


@pytest.mark.parametrize(
    "body",
    [b"", b"not json", b"[1, 2]", b'{"ref": 7}', b"[" * 100_000],
    ids=["empty", "text", "list", "odd-ref", "deep"],
)
def test_a_signed_body_that_names_no_branch_syncs(guarded: TestClient, body: bytes) -> None:
    headers = {"X-Hub-Signature-256": f"sha256={_signed(body)}"}
    assert _push(guarded, headers, body) == (202, {"syncing": ["signed"]})


def test_a_body_over_the_cap_is_refused_before_it_is_read_whole(guarded: TestClient) -> None:
    big = b" " * (MAX_BODY + 1)
    code, status = _push(guarded, {"X-Hub-Signature-256": f"sha256={_signed(big)}"}, big)
    assert code == 413
    assert f"over the limit of {MAX_BODY} bytes" in status["message"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it comes
        for _ in range(6):
            yield b" " * (1024 * 1024)

    reply = guarded.post("/gitops/signed/webhook", content=chunks())
    assert reply.status_code == 413


def test_a_source_without_a_secret_is_refused_under_auth_and_open_without(
    guarded: TestClient, open_platform: TestClient
) -> None:
    code, status = _push(guarded, {}, name="unsigned")
    assert code == 403
    assert "has no webhook secret" in status["message"]
    assert "--webhook-secret-file" in status["message"]
    assert _push(open_platform, {}, name="unsigned") == (202, {"syncing": ["unsigned"]})
    # A secret, once set, is checked with or without --auth.
    assert _push(open_platform, {}, name="signed")[0] == 401
    assert _push(guarded, {}, name="nowhere")[0] == 404


def test_the_secret_is_kept_to_its_owner_and_never_shown(
    guarded: TestClient, tmp_path: Path
) -> None:
    listed = guarded.get("/gitops")
    assert SHARED_KEY not in listed.text
    by_name = {item["name"]: item for item in listed.json()["items"]}
    assert by_name["signed"]["webhook"] == {"path": "/gitops/signed/webhook", "signed": True}
    assert by_name["unsigned"]["webhook"]["signed"] is False
    assert SHARED_KEY not in guarded.get("/gitops/signed").text
    saved = tmp_path / "gitops" / "sources.json"
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    assert SHARED_KEY in saved.read_text()  # kept for the next start
    assert SHARED_KEY not in repr(parse_source(json.loads(saved.read_text())[0]))


@pytest.mark.parametrize(
    ("secret", "why"),
    [
        ("too short", "must be 16 to 256 characters, not 9"),
        ("x" * 257, "must be 16 to 256 characters, not 257"),
        ("tab\tinside 0123456789", "must be printable ASCII"),
        ("ünïcödé 0123456789", "must be printable ASCII"),
        (12345678901234567, "Input should be a valid string"),
    ],
)
def test_a_bad_secret_is_named_but_never_echoed(
    guarded: TestClient, secret: object, why: str
) -> None:
    with pytest.raises(SpecError) as raised:
        parse_source({"name": "bad", "url": "/srv/models", "webhookSecret": secret})
    assert f"webhookSecret: {why}" in str(raised.value)
    assert str(secret) not in str(raised.value)
    reply = guarded.post("/gitops", json={"name": "bad", "url": "/srv/x", "webhookSecret": secret})
    assert reply.status_code == 422
    assert reply.json()["details"]["causes"][0]["field"] == "webhookSecret"
    assert str(secret) not in reply.text


@pytest.mark.parametrize(
    ("method", "path", "open_"),
    [
        ("POST", "/gitops/team-a/webhook", True),
        ("GET", "/gitops/team-a/webhook", False),
        ("POST", "/gitops/webhook", False),  # every source: an API key's call
        ("POST", "/gitops/team-a/sync", False),
        ("POST", "/gitops/team-a/webhook/more", False),
        ("POST", "/gitops/a/b/webhook", False),
        ("POST", "/gitops//webhook", False),
        ("POST", "/gitops/team-a/webhooks", False),
        ("DELETE", "/gitops/team-a", False),
    ],
)
def test_only_a_sources_webhook_is_open_under_auth(method: str, path: str, open_: bool) -> None:
    assert is_open(method, path) is open_


def test_a_sender_leaving_mid_body_syncs_nothing_and_raises_nothing(tmp_path: Path) -> None:
    """The route is open to anyone: a connection dropped halfway is no traceback, no 500."""
    sources = GitSources(tmp_path, "http://127.0.0.1:1", lambda *_: None)
    sources.add(parse_source({"name": "signed", "url": str(tmp_path / "repo"),
                              "webhookSecret": SHARED_KEY}))  # fmt: skip
    app = Starlette(routes=gitops_routes(sources, auth=True))
    messages = iter([{"type": "http.request", "body": b'{"ref": ', "more_body": True},
                     {"type": "http.disconnect"}])  # fmt: skip
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return next(messages)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/gitops/signed/webhook",
             "headers": [(b"x-hub-signature-256", b"sha256=00")], "query_string": b"",
             "http_version": "1.1", "scheme": "http", "server": ("127.0.0.1", 80),
             "client": ("127.0.0.1", 1), "root_path": ""}  # fmt: skip
    asyncio.run(app(scope, receive, send))
    assert sent[0]["status"] == 400
    assert not sources.syncs["signed"]._wake.is_set()
