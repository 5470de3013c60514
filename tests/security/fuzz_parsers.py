"""Coverage-guided fuzz targets (atheris, libFuzzer) for the parsers that take untrusted bytes:
the v2 request decoder with its binary tensor extension, bearer JWTs, and YAML manifests.

    python -m tests.security.fuzz_parsers TARGET [libFuzzer options: -runs=N -max_total_time=S]

A target fails when its parser raises anything but the error it documents for bad input
(``InvalidRequestError``, ``UnauthenticatedError``, ``SpecError``), hangs or crashes; libFuzzer
then writes the input that did it to a ``crash-…`` file. ``tests/security/test_parser_fuzzing.py``
runs each briefly; ``scripts/fuzz-parsers`` runs them longer.
"""

from __future__ import annotations

import base64
import contextlib
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["modelplane"]):
    from modelplane.api.manifests import load_models
    from modelplane.errors import InvalidRequestError, SpecError, UnauthenticatedError
    from modelplane.runtime.v2.codec import decode_request
    from modelplane.security.roles import Role
    from modelplane.security.tokens import OidcSettings, TokenVerifier

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

ISSUER, AUDIENCE = "https://idp.example", "modelplane"


def v2_request(data: bytes) -> None:
    """A request body and its Inference-Header-Content-Length, as the runtime receives them:
    the first two bytes are the header's value plus one (0: no header), the rest the body."""
    header = int.from_bytes(data[:2], "big") - 1
    with contextlib.suppress(InvalidRequestError):
        decode_request(data[2:], None if header < 0 else str(header))


def _v2_seeds() -> list[bytes]:
    """Valid requests to start from: JSON data, and the binary extension."""
    plain = {"inputs": [{"name": "X", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]}
    binary = {"inputs": [{"name": "X", "datatype": "FP32", "shape": [1, 2],
                          "parameters": {"binary_data_size": 8}}],
              "outputs": [{"name": "Y", "parameters": {"binary_data": True}}]}  # fmt: skip
    header = json.dumps(binary).encode()
    texts = {"inputs": [{"name": "T", "datatype": "BYTES", "shape": [2], "data": ["a", "b"]}]}
    return [
        b"\x00\x00" + json.dumps(plain).encode(),
        (len(header) + 1).to_bytes(2, "big") + header + bytes(8),
        b"\x00\x00" + json.dumps(texts).encode(),
    ]


def _verifier() -> tuple[TokenVerifier, rsa.RSAPrivateKey]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    jwks = Path(tempfile.mkdtemp()) / "jwks.json"
    jwks.write_text(json.dumps({"keys": [{**public, "kid": "k1", "use": "sig"}]}))
    grants = {"team": {"team-a": Role.DEPLOYER}}
    settings = OidcSettings(ISSUER, AUDIENCE, str(jwks), group_grants=grants)
    return TokenVerifier(settings), key


def _segment(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def jwt_token(data: bytes, verifier: TokenVerifier, key: rsa.RSAPrivateKey) -> None:
    """Tokens three ways: raw text, three fuzzed segments, and a fuzzed header and claims signed
    with the real key (so that decoding goes past the signature)."""
    given = atheris.FuzzedDataProvider(data)
    shape = given.ConsumeIntInRange(0, 2)
    if shape == 0:
        token = given.ConsumeUnicodeNoSurrogates(4096)
    elif shape == 1:
        parts = [given.ConsumeBytes(given.ConsumeIntInRange(0, 512)) for _ in range(3)]
        token = ".".join(_segment(p) for p in parts)
    else:
        claims = {
            "sub": given.ConsumeUnicodeNoSurrogates(16),
            "iss": ISSUER if given.ConsumeBool() else given.ConsumeUnicodeNoSurrogates(16),
            "aud": AUDIENCE if given.ConsumeBool() else given.ConsumeUnicodeNoSurrogates(16),
            "exp": given.ConsumeIntInRange(0, 2**33),
            "groups": ["team" if given.ConsumeBool() else given.ConsumeUnicodeNoSurrogates(8)],
        }
        headers = {"kid": "k1" if given.ConsumeBool() else given.ConsumeUnicodeNoSurrogates(8)}
        token = jwt.encode(claims, key, algorithm="RS256", headers=headers)
    with contextlib.suppress(UnauthenticatedError):
        verifier.principal(token)


def yaml_manifest(data: bytes) -> None:
    with contextlib.suppress(SpecError):
        load_models(data.decode("utf-8", errors="replace"))


def _manifest_seeds() -> list[bytes]:
    examples = Path(__file__).resolve().parents[2] / "examples"
    return [path.read_bytes() for path in sorted(examples.glob("*/*.yaml"))]


def _targets() -> dict[str, Callable[[bytes], None]]:
    verifier, key = _verifier()
    return {
        "v2-request": v2_request,
        "jwt": lambda data: jwt_token(data, verifier, key),
        "yaml-manifest": yaml_manifest,
    }


TARGETS = ("v2-request", "jwt", "yaml-manifest")


def main() -> None:
    name = sys.argv[1] if len(sys.argv) > 1 else ""
    if name not in TARGETS:
        raise SystemExit(f"usage: python -m tests.security.fuzz_parsers {{{'|'.join(TARGETS)}}}")
    target = _targets()[name]
    options = sys.argv[2:]
    if not any(not o.startswith("-") for o in options):  # no corpus named: start from the seeds
        corpus = Path(tempfile.mkdtemp(prefix=f"fuzz-{name}-"))
        seeds = {"v2-request": _v2_seeds, "yaml-manifest": _manifest_seeds}.get(name, list)()
        for index, seed in enumerate(seeds):
            (corpus / f"seed-{index}").write_bytes(seed)
        options.append(str(corpus))
    started = time.monotonic()
    atheris.Setup([sys.argv[0], *options], target)
    print(f"fuzzing {name} (set up in {time.monotonic() - started:.1f} s)", flush=True)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
