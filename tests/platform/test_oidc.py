"""`modelplane up --auth --oidc-*`: JWT bearer tokens from an identity provider, whose keys are a
JWKS file made here with real RSA keys, on the control API and the gateway. Members of a group get
its namespace's role; every forged, stale or misdirected token is refused with the reason."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.platform.conftest import API, Platform, wait_for
from tests.platform.test_auth import ROW, manifest

ISSUER = "https://idp.example.com/realms/ml"
AUDIENCE = "modelplane"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Provider:
    """An identity provider's signing key, published as a JWKS file."""

    def __init__(self, jwks: Path) -> None:
        self.jwks = jwks
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        jwks.write_text(json.dumps({"keys": [{**public, "kid": "k1", "use": "sig",
                                              "alg": "RS256"}]}))  # fmt: skip
        self.public_pem = self.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def token(self, key: Any = None, kid: str = "k1", **claims: Any) -> str:
        now = int(time.time())
        body = {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice@example.com",
                "groups": ["team-a-devs"], "iat": now, "exp": now + 300, **claims}  # fmt: skip
        return jwt.encode(body, key or self.key, algorithm="RS256", headers={"kid": kid})


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Provider:
    return Provider(tmp_path_factory.mktemp("idp") / "jwks.json")


@pytest.fixture(scope="module")
def federated(
    provider: Provider, tmp_path_factory: pytest.TempPathFactory, iris_dir: Path
) -> Iterator[Platform]:
    root = tmp_path_factory.mktemp("federated")
    options = ("--auth", "--oidc-issuer", ISSUER, "--oidc-audience", AUDIENCE,
               "--oidc-jwks", str(provider.jwks), "--oidc-group", "team-a-devs=team-a:deployer",
               "--oidc-group", "auditors=*:viewer")  # fmt: skip
    running = Platform(root / "state", root / "up.log", options=options)
    path = root / "m.yaml"
    path.write_text(manifest("scorer", "team-a", (iris_dir / "model.onnx").as_uri()))
    applied = running.cli("apply", "-f", str(path), key=provider.token())
    assert applied.returncode == 0, applied.stderr
    wait_for(lambda: _get(running, provider.token()).json().get("status", {})
             .get("conditions", [{}])[0].get("status") == "True", "scorer Ready", 60)  # fmt: skip
    yield running
    running.stop()


def _get(platform: Platform, token: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.get(f"{platform.api}{API}/namespaces/team-a/models/scorer", headers=headers,
                     timeout=10)  # fmt: skip


def _infer(platform: Platform, token: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.post(f"{platform.gateway}/v2/models/team-a/scorer/infer", json=ROW,
                      headers=headers, timeout=30)  # fmt: skip


def _unsigned(claims: dict[str, Any], alg: str = "none") -> str:
    header = _b64(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    return f"{header}.{_b64(json.dumps(claims).encode())}."


def test_a_group_members_token_deploys_and_infers_in_its_namespace(
    federated: Platform, provider: Provider
) -> None:
    token = provider.token()
    assert _get(federated, token).status_code == 200
    assert _infer(federated, token).status_code == 200
    auditor = provider.token(sub="bob@example.com", groups=["auditors"])
    assert _get(federated, auditor).status_code == 200
    deleted = httpx.delete(f"{federated.api}{API}/namespaces/team-a/models/scorer",
                           headers={"Authorization": f"Bearer {auditor}"}, timeout=10)  # fmt: skip
    assert deleted.status_code == 403
    assert "'bob@example.com' may not write" in deleted.json()["message"]


def test_every_bad_token_is_refused_with_its_reason(
    federated: Platform, provider: Provider
) -> None:
    now = int(time.time())
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "mallory", "groups": ["team-a-devs"],
              "iat": now, "exp": now + 300}  # fmt: skip
    signing_input = _unsigned(claims, "HS256").rsplit(".", 1)[0]
    confused = hmac.new(provider.public_pem, signing_input.encode(), hashlib.sha256).digest()
    bad = {
        "expired": (provider.token(exp=now - 600, iat=now - 900), "has expired"),
        "not yet valid": (provider.token(nbf=now + 600), "not valid yet"),
        "another audience": (provider.token(aud="billing"), "not for this platform"),
        "another issuer": (provider.token(iss="https://evil.example.com"), "not issued by"),
        "alg none": (_unsigned(claims), "algorithm 'none' is not allowed"),
        "HS256 with the public key": (f"{signing_input}.{_b64(confused)}",
                                      "algorithm 'HS256' is not allowed"),
        "signed by another key": (provider.token(key=stranger), "signature does not verify"),
        "an unknown key id": (provider.token(kid="k9"), "no key of the identity provider"),
        "no expiry": (jwt.encode({k: v for k, v in claims.items() if k != "exp"}, provider.key,
                                 algorithm="RS256", headers={"kid": "k1"}), "lacks the 'exp'"),
        "garbage": ("a.b.c", "not a well-formed JWT"),
    }  # fmt: skip
    for what, (token, reason) in bad.items():
        for reply in (_get(federated, token), _infer(federated, token)):
            assert reply.status_code == 401, f"{what}: {reply.status_code} {reply.text}"
            assert reason in reply.text, f"{what}: {reply.text}"
    # A valid token of someone in no mapped group: known, but allowed nothing.
    nobody = provider.token(groups=["marketing"])
    assert _get(federated, nobody).status_code == 403
    assert _infer(federated, nobody).status_code == 403
