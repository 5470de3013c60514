"""OIDC signing keys from a JWKS URL, served by a real HTTP server on 127.0.0.1 that a test can
rotate, hang or stop: the keys are fetched in the background, so the gateway answers while the
identity provider hangs; a new key id is fetched at once; a dead provider leaves the last good
keys working; and until a first fetch succeeds, tokens are refused with the reason."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from modelplane.errors import UnauthenticatedError
from modelplane.gateway.proxy import Gateway
from modelplane.gateway.routing import RoutingTable
from modelplane.security import jwks
from modelplane.security.authn import Authenticator
from modelplane.security.roles import Principal, Role
from modelplane.security.tokens import OidcSettings, TokenVerifier
from modelplane.telemetry.gateway_metrics import GatewayMetrics

ISSUER = "https://idp.example.com/realms/ml"
AUDIENCE = "modelplane"
PROMPT = 3.0  # seconds: far below the fetch timeout (10 s) that a blocked request would wait


class Signer:
    """One signing key of the identity provider, with its key id."""

    def __init__(self, kid: str) -> None:
        self.kid = kid
        self.key = ec.generate_private_key(ec.SECP256R1())

    def jwk(self) -> dict[str, Any]:
        public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self.key.public_key()))
        return {**public, "kid": self.kid, "use": "sig", "alg": "ES256"}

    def token(self, kid: str | None = None) -> str:
        now = int(time.time())
        claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice@example.com",
                  "groups": ["team-a-devs"], "iat": now, "exp": now + 300}  # fmt: skip
        return jwt.encode(claims, self.key, algorithm="ES256", headers={"kid": kid or self.kid})


class IdentityProvider:
    """A JWKS endpoint: ``publish`` changes the keys, ``hanging`` holds every request until it
    ends, ``stop`` closes the port."""

    def __init__(self) -> None:
        self.document = b'{"keys": []}'
        self.requests = 0
        self.hung = threading.Event()  # a request is being held
        self._hang, self._released = threading.Event(), threading.Event()
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                provider.requests += 1
                if provider._hang.is_set():
                    provider.hung.set()
                    provider._released.wait(30)
                body = provider.document
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up on a held request

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/certs"
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )
        self._thread.start()

    def publish(self, *signers: Signer) -> None:
        self.document = json.dumps({"keys": [s.jwk() for s in signers]}).encode()

    @contextmanager
    def hanging(self) -> Iterator[None]:
        self.hung.clear()
        self._released.clear()
        self._hang.set()
        try:
            yield
        finally:
            self._hang.clear()
            self._released.set()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._released.set()
            self._server.shutdown()
            self._server.server_close()
            self._thread.join()


@pytest.fixture
def idp() -> Iterator[IdentityProvider]:
    provider = IdentityProvider()
    yield provider
    provider.stop()


def _settings(url: str, **extra: Any) -> OidcSettings:
    grants = {"team-a-devs": {"team-a": Role.DEPLOYER}}
    return OidcSettings(ISSUER, AUDIENCE, url, ("ES256",), group_grants=grants, **extra)


def _eventually(check: Callable[[], bool], what: str, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not after {seconds} s: {what}")
        time.sleep(0.05)


def _accepted(verifier: TokenVerifier, token: str) -> bool:
    try:
        verifier.principal(token)
    except UnauthenticatedError:
        return False
    return True


def _refusal(verifier: TokenVerifier, token: str) -> str:
    with pytest.raises(UnauthenticatedError) as refused:
        verifier.principal(token)
    return str(refused.value)


def test_keys_from_a_url_check_tokens(idp: IdentityProvider) -> None:
    signer = Signer("k1")
    idp.publish(signer)
    with TokenVerifier(_settings(idp.url)) as verifier:
        # Started with the provider up: the first request is served with its keys.
        assert verifier.principal(signer.token()) == Principal(
            "alice@example.com", {"team-a": Role.DEPLOYER}
        )
        assert "has the id 'k9'" in _refusal(verifier, signer.token(kid="k9"))
        assert "signature does not verify" in _refusal(verifier, Signer("k1").token())


async def _timed_get(gateway: Gateway, token: str) -> tuple[int, float]:
    transport = httpx.ASGITransport(app=gateway)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        began = time.monotonic()
        answer = await client.get("/v1/models", headers={"Authorization": f"Bearer {token}"})
        return answer.status_code, time.monotonic() - began


def test_the_gateway_answers_while_the_identity_provider_hangs(idp: IdentityProvider) -> None:
    signer = Signer("k1")
    idp.publish(signer)
    with TokenVerifier(_settings(idp.url)) as verifier:
        gateway = Gateway(RoutingTable(), GatewayMetrics(), authenticator=Authenticator(None,
                          tokens=verifier))  # fmt: skip
        with idp.hanging():
            # A key id the set lacks starts a fetch, which the provider holds ...
            status, took = asyncio.run(_timed_get(gateway, signer.token(kid="k2")))
            assert (status, took < PROMPT) == (401, True)
            assert idp.hung.wait(PROMPT), "no fetch for the unknown key id"
            # ... while requests with known keys are answered from the keys held.
            status, took = asyncio.run(_timed_get(gateway, signer.token()))
            assert (status, took < PROMPT) == (200, True)


def test_a_new_key_id_is_fetched_at_once(idp: IdentityProvider) -> None:
    old, new = Signer("k1"), Signer("k2")
    idp.publish(old)
    with TokenVerifier(_settings(idp.url)) as verifier:
        idp.publish(old, new)  # the provider rotates: the new key signs from now on
        _eventually(lambda: _accepted(verifier, new.token()), "the new key id accepted")
        assert _accepted(verifier, old.token())
        # Unknown key ids ask for a fetch at most every 30 s: a flood of them costs none.
        fetched = idp.requests
        for n in range(20):
            _refusal(verifier, new.token(kid=f"forged-{n}"))
    assert idp.requests == fetched == 2


def test_a_dead_identity_provider_leaves_the_last_keys_working(
    idp: IdentityProvider, caplog: pytest.LogCaptureFixture
) -> None:
    signer = Signer("k1")
    idp.publish(signer)
    caplog.set_level(logging.WARNING, "modelplane.security.jwks")
    with TokenVerifier(_settings(idp.url)) as verifier:
        idp.stop()
        _refusal(verifier, signer.token(kid="k2"))  # asks for a fetch, which fails

        def warned() -> bool:
            return any(idp.url in r.getMessage() and "ConnectError" in r.getMessage()
                       for r in caplog.records)  # fmt: skip

        _eventually(warned, "a warning naming the URL and the reason")
        assert "keeping the last good ones" in caplog.text
        assert verifier.principal(signer.token()).name == "alice@example.com"


def test_until_the_keys_are_loaded_tokens_are_refused_with_the_reason(
    idp: IdentityProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A fetch slower than its 1 s timeout on a busy machine must not hold the next one back
    # for the production gaps (30 s) while this test waits.
    monkeypatch.setattr(jwks, "RETRY_SECONDS", 0.5)
    monkeypatch.setattr(jwks, "ASK_GAP_SECONDS", 0.5)
    signer = Signer("k1")
    idp.publish(signer)
    with idp.hanging():
        began = time.monotonic()
        verifier = TokenVerifier(_settings(idp.url, jwks_timeout=1.0))
        verifier.start()  # waits for the first fetch at most its timeout
        assert time.monotonic() - began < 1.0 + PROMPT
        refused = _refusal(verifier, signer.token())
        assert refused.startswith(f"the identity provider's keys ({idp.url}) are not loaded yet: ")
    try:
        # The provider answers again: the refused token asked for a fetch, which loads the keys.
        _eventually(lambda: _accepted(verifier, signer.token()), "the keys loaded")
    finally:
        verifier.close()
