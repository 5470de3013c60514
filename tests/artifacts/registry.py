"""A real OCI registry for the tests, and the real client that pushes to it.

The registry is the CNCF distribution registry as Debian packages it (``docker-registry``),
started on a free loopback port with filesystem storage under a temporary directory, in one of
three modes: anonymous; ``htpasswd`` (Basic authentication against a bcrypt file, hashed here
with the system's libcrypt); and ``token``, where a small token service of our own (below)
checks Basic logins and hands out JWTs signed with a key whose self-signed certificate is the
registry's ``rootcertbundle``. Content goes in with the ORAS CLI (``oras login``, ``oras push``),
both readied by ``scripts/oci-testenv``.
"""

from __future__ import annotations

import base64
import ctypes
import datetime
import gzip
import hashlib
import http.server
import json
import os
import secrets
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.processes import free_port, stop_process

ROOT = Path(__file__).resolve().parents[2]
REGISTRY = Path("/usr/bin/docker-registry")
SETUP_SECONDS = 10 * 60  # a cold ORAS build on 2 cores, or an apt-get install, with room to spare
START_SECONDS = 30
ORAS_SECONDS = 120
SERVICE = "modelplane-tests"
ISSUER = "modelplane-tests-issuer"


def oras_binary() -> Path:
    """The ORAS CLI: the last line ``scripts/oci-testenv`` prints (which also installs the
    registry when it is missing)."""
    result = subprocess.run(
        [str(ROOT / "scripts" / "oci-testenv")],
        capture_output=True, text=True, timeout=SETUP_SECONDS, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise AssertionError(f"scripts/oci-testenv failed:\n{result.stderr[-4000:]}")
    if not REGISTRY.exists():
        raise AssertionError(f"scripts/oci-testenv ran but {REGISTRY} is missing")
    return Path(result.stdout.strip().splitlines()[-1])


def bcrypt_hash(password: str) -> str:
    """A bcrypt hash, the only kind the registry's htpasswd accepts, from libxcrypt."""
    libcrypt = ctypes.CDLL("libcrypt.so.1")
    libcrypt.crypt_gensalt.restype = ctypes.c_char_p
    libcrypt.crypt_gensalt.argtypes = [
        ctypes.c_char_p,
        ctypes.c_ulong,
        ctypes.c_char_p,
        ctypes.c_int,
    ]
    libcrypt.crypt.restype = ctypes.c_char_p
    libcrypt.crypt.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    salt = libcrypt.crypt_gensalt(b"$2b$", 5, None, 0)
    hashed = libcrypt.crypt(password.encode(), salt)
    if not salt or not hashed or not hashed.startswith(b"$2b$"):
        raise AssertionError("libcrypt.so.1 cannot make bcrypt hashes")
    return str(hashed.decode())


@dataclass(frozen=True)
class Account:
    username: str
    password: str = field(repr=False)

    def env(self) -> dict[str, str]:
        return {"REGISTRY_USERNAME": self.username, "REGISTRY_PASSWORD": self.password}


class TokenService:
    """The registry's token service: a login that matches ``account`` gets what it asks for,
    anyone else without a login gets a token that grants nothing, a wrong login gets a 401."""

    def __init__(self, account: Account, work_dir: Path) -> None:
        self.account = account
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.certificate = _self_signed(self.key)
        self.bundle = work_dir / "token-cert.pem"
        self.bundle.write_bytes(self.certificate.public_bytes(serialization.Encoding.PEM))
        service = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status, body = service.answer(self.path, self.headers.get("Authorization"))
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/token"

    def answer(self, path: str, authorization: str | None) -> tuple[int, bytes]:
        query = parse_qs(urlsplit(path).query)
        granted = []
        if authorization is not None:
            expected = f"{self.account.username}:{self.account.password}".encode()
            if authorization != f"Basic {base64.b64encode(expected).decode()}":
                return 401, b'{"details": "wrong login"}'
            for scope in query.get("scope", []):
                kind, name, actions = scope.split(":")
                granted.append({"type": kind, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        claims = {
            "iss": ISSUER, "sub": self.account.username if granted else "", "aud": SERVICE,
            "exp": now + 300, "nbf": now - 10, "iat": now, "jti": secrets.token_hex(8),
            "access": granted,
        }  # fmt: skip
        der = self.certificate.public_bytes(serialization.Encoding.DER)
        token = jwt.encode(claims, self.key, "ES256", {"x5c": [base64.b64encode(der).decode()]})
        return 200, json.dumps({"token": token, "expires_in": 300}).encode()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _self_signed(key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ISSUER)])
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip


@dataclass
class Registry:
    """``docker-registry serve`` on a free loopback port; ``auth`` is "none", "htpasswd" or
    "token"."""

    work_dir: Path
    auth: str = "none"
    account: Account = field(
        default_factory=lambda: Account(f"pusher-{secrets.token_hex(3)}", secrets.token_urlsafe(18))
    )
    port: int = field(default_factory=free_port)

    def __post_init__(self) -> None:
        self.storage = self.work_dir / "storage"
        self.log = self.work_dir / "registry.log"
        self.tokens = TokenService(self.account, self.work_dir) if self.auth == "token" else None
        config = self.work_dir / "config.yml"
        config.write_text(json.dumps(self._config()))  # YAML is a superset of JSON
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [str(REGISTRY), "serve", str(config)], stdout=out, stderr=subprocess.STDOUT
            )
        try:
            self._wait_until_serving()
        except BaseException:
            self.stop()
            raise

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _config(self) -> dict[str, object]:
        config: dict[str, object] = {
            "version": 0.1,
            "log": {"level": "info", "accesslog": {"disabled": False}},
            "storage": {"filesystem": {"rootdirectory": str(self.storage)}},
            "http": {"addr": self.host, "secret": secrets.token_hex(16)},
        }
        if self.auth == "htpasswd":
            htpasswd = self.work_dir / "htpasswd"
            htpasswd.write_text(f"{self.account.username}:{bcrypt_hash(self.account.password)}\n")
            config["auth"] = {"htpasswd": {"realm": SERVICE, "path": str(htpasswd)}}
        elif self.tokens is not None:
            config["auth"] = {
                "token": {
                    "realm": self.tokens.realm, "service": SERVICE, "issuer": ISSUER,
                    "rootcertbundle": str(self.tokens.bundle),
                }
            }  # fmt: skip
        return config

    def _wait_until_serving(self) -> None:
        """Until ``/v2/`` answers: 200 when anonymous, 401 with a challenge otherwise."""
        deadline = time.monotonic() + START_SECONDS
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"docker-registry exited:\n{self.output()}")
            try:
                if httpx.get(f"http://{self.host}/v2/", timeout=2).status_code in (200, 401):
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"docker-registry did not serve in {START_SECONDS}s")
            time.sleep(0.1)

    def blob_file(self, digest: str) -> Path:
        """Where the filesystem storage keeps a blob's bytes."""
        hex_digest = digest.removeprefix("sha256:")
        blobs = self.storage / "docker" / "registry" / "v2" / "blobs" / "sha256"
        return blobs / hex_digest[:2] / hex_digest / "data"

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        stop_process(self.process)
        if self.tokens is not None:
            self.tokens.stop()


@dataclass
class Oras:
    """The ORAS CLI with a Docker config of its own (where ``oras login`` writes)."""

    binary: Path
    config_dir: Path

    def run(self, *args: str, cwd: Path | None = None, stdin: str | None = None) -> str:
        env = {**os.environ, "DOCKER_CONFIG": str(self.config_dir)}
        done = subprocess.run(
            [str(self.binary), *args], cwd=cwd, input=stdin, env=env,
            capture_output=True, text=True, timeout=ORAS_SECONDS, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise AssertionError(f"oras {args[0]} failed: {done.stderr}{done.stdout}")
        return done.stdout

    def login(self, registry: Registry) -> None:
        account = registry.account
        self.run("login", "--plain-http", "--username", account.username, "--password-stdin",
                 registry.host, stdin=account.password)  # fmt: skip

    def push(self, reference: str, *paths: str, cwd: Path) -> str:
        """``oras push`` of ``paths`` (files or directories, relative to ``cwd``); the digest of
        the manifest the tag now names, as ``oras resolve`` reads it back."""
        self.run("push", "--plain-http", reference, *paths, cwd=cwd)
        return self.resolve(reference)

    def resolve(self, reference: str) -> str:
        return self.run("resolve", "--plain-http", reference).strip()

    def push_image(self, reference: str, layers: list[Path], work_dir: Path) -> str:
        """An image as a build tool pushes it (untitled tar+gzip layers and an image config),
        with ``oras blob push`` and ``oras manifest push``; the manifest's digest."""
        repository = reference.rsplit(":", 1)[0]
        described = [self._blob(repository, layer) for layer in layers]
        config = work_dir / "config.json"
        config.write_text(json.dumps({
            "architecture": "amd64", "os": "linux", "config": {},
            "rootfs": {"type": "layers", "diff_ids": [_diff_id(layer) for layer in layers]},
        }))  # fmt: skip
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {**self._blob(repository, config),
                       "mediaType": "application/vnd.oci.image.config.v1+json"},
            "layers": [{**d, "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip"}
                       for d in described],
        }  # fmt: skip
        path = work_dir / "manifest.json"
        path.write_text(json.dumps(manifest))
        self.run("manifest", "push", "--plain-http", reference, str(path))
        return self.resolve(reference)

    def _blob(self, repository: str, path: Path) -> dict[str, object]:
        pushed = self.run("blob", "push", "--plain-http", "--descriptor", repository, str(path))
        descriptor = json.loads(pushed)
        return {"digest": descriptor["digest"], "size": descriptor["size"]}


def _diff_id(layer: Path) -> str:
    """What an image config names a layer by: the digest of its uncompressed tar."""
    return "sha256:" + hashlib.sha256(gzip.decompress(layer.read_bytes())).hexdigest()
