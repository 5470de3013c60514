"""Talking to an OCI registry (the distribution API, v2) for ``oci://`` sources: the reference,
where the registry is, authentication, and its answers mapped to the artifact errors.

Registries authenticate in one of three ways, and a client learns which from the
``WWW-Authenticate`` header of a 401: none at all; ``Basic`` (the login itself on every request);
or ``Bearer`` (the login, if any, is exchanged at the challenge's ``realm`` for a token scoped to
the repository, which then goes on every request). The login comes from ``oci_credentials``.
Loopback registries and those listed in ``MODELPLANE_INSECURE_REGISTRIES`` are spoken to over
plain HTTP, every other one over HTTPS. ``oci.py`` is the caller.
"""

from __future__ import annotations

import base64
import ipaddress
import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import NoReturn

import httpx

from modelplane.artifacts.oci_credentials import Logins, find_logins
from modelplane.artifacts.verifying import shown
from modelplane.errors import (
    ArtifactAccessDeniedError,
    ArtifactError,
    ArtifactNotFoundError,
    ArtifactUnreachableError,
)

INSECURE_VARIABLE = "MODELPLANE_INSECURE_REGISTRIES"
_LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})
_NOT_FOUND_CODES = frozenset({"MANIFEST_UNKNOWN", "NAME_UNKNOWN", "BLOB_UNKNOWN"})
_CHALLENGE_PARAMETER = re.compile(r'(\w+)="([^"]*)"')
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_ERROR_CODE = re.compile(rb'"code"\s*:\s*"([A-Z_]+)"')  # the registry's error body


@dataclass(frozen=True)
class Reference:
    """``oci://registry[:port]/repository`` and a tag (default ``latest``) or a digest."""

    registry: str
    repository: str
    tag: str | None
    digest: str | None  # "sha256:<hex>"

    @classmethod
    def parse(cls, uri: str) -> Reference:
        registry, _, path = uri.removeprefix("oci://").partition("/")
        if "@" in path:
            repository, digest = path.split("@", 1)
            return cls(registry, repository, None, digest)
        if ":" in path.rsplit("/", 1)[-1]:
            repository, tag = path.rsplit(":", 1)
            return cls(registry, repository, tag, None)
        return cls(registry, path, "latest", None)

    @property
    def reference(self) -> str:
        """What the manifest is asked for by: the digest, else the tag."""
        return self.digest or self.tag or "latest"

    @property
    def name(self) -> str:
        """The artifact's name in the cache: the repository's last segment."""
        return self.repository.rsplit("/", 1)[-1]

    def pinned(self, digest: str) -> str:
        return f"oci://{self.registry}/{self.repository}@{digest}"


def is_digest(text: str) -> bool:
    return _DIGEST.fullmatch(text) is not None


def registry_url(registry: str) -> str:
    """The base URL of ``registry``: plain HTTP for loopback and listed insecure registries."""
    if registry in ("docker.io", "index.docker.io"):
        return "https://registry-1.docker.io"
    host = registry.rsplit(":", 1)[0] if not registry.endswith("]") else registry
    listed = {name.strip() for name in os.environ.get(INSECURE_VARIABLE, "").split(",")}
    plain = host in _LOOPBACK_NAMES or _is_loopback(host) or bool({registry, host} & listed)
    return f"{'http' if plain else 'https'}://{registry}"


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class RegistryClient:
    """One repository of one registry, for the length of a ``with`` block; safe to share
    between the threads of a parallel download."""

    def __init__(self, uri: str, reference: Reference, connections: int, timeout: float = 60):
        self.uri, self.reference = uri, reference
        self.base = registry_url(reference.registry)
        repository = reference.repository
        if self.base == "https://registry-1.docker.io" and "/" not in repository:
            repository = f"library/{repository}"  # Docker Hub's official images
        self.repository_url = f"{self.base}/v2/{repository}"
        self.scope = f"repository:{repository}:pull"
        self.logins: Logins = find_logins(reference.registry)
        self.client = httpx.Client(
            timeout=httpx.Timeout(timeout, connect=10),
            follow_redirects=True,  # blobs may live elsewhere; httpx drops Authorization there
            limits=httpx.Limits(max_connections=connections),
        )
        self._authorization: str | None = None
        self._lock = threading.Lock()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.client.close()

    @contextmanager
    def request(
        self, method: str, path: str, headers: dict[str, str], what: str
    ) -> Iterator[httpx.Response]:
        """The streamed answer to ``method`` on ``path`` of the repository (``manifests/v1``),
        authenticated as the registry asks; an error for anything but 200 and 206 (``what``
        names the object in errors)."""
        reply = self._open(method, path, headers, what)
        try:
            yield reply
        finally:
            reply.close()

    def _open(self, method: str, path: str, headers: dict[str, str], what: str) -> httpx.Response:
        url = f"{self.repository_url}/{path}"
        reply = self._send(method, url, headers)
        if reply.status_code == 401:
            challenge = reply.headers.get("WWW-Authenticate", "")
            reply.close()
            self._authenticate(challenge, reply.status_code)
            reply = self._send(method, url, headers)
        if reply.status_code not in (200, 206):
            try:
                body = reply.read() if method != "HEAD" else b""
            except httpx.HTTPError:
                body = b""
            finally:
                reply.close()
            self.failed(reply.status_code, body, what)
        return reply

    def _send(self, method: str, url: str, headers: dict[str, str]) -> httpx.Response:
        with self._lock:
            authorization = self._authorization
        sent = {**headers, "Authorization": authorization} if authorization else headers
        try:
            return self.client.send(
                self.client.build_request(method, url, headers=sent), stream=True
            )
        except httpx.HTTPError as exc:
            raise self.unreachable(exc) from exc

    def _authenticate(self, challenge: str, status: int) -> None:
        scheme, _, rest = challenge.partition(" ")
        parameters = dict(_CHALLENGE_PARAMETER.findall(rest))
        login = self.logins.login
        if scheme.lower() == "bearer" and "realm" in parameters:
            authorization = f"Bearer {self._token(parameters)}"
        elif scheme.lower() == "basic" and login is not None:
            pair = f"{login.username}:{login.password}".encode()
            authorization = f"Basic {base64.b64encode(pair).decode()}"
        else:
            self.failed(status, b"", f"artifact {self.uri}")
        with self._lock:
            self._authorization = authorization

    def _token(self, challenge: dict[str, str]) -> str:
        """A token from the challenge's realm, asked for with the login when there is one."""
        login, realm = self.logins.login, challenge["realm"]
        query = {"service": challenge.get("service", ""), "scope": challenge.get("scope", "")}
        query = {k: v for k, v in query.items() if v} or {"scope": self.scope}
        auth = (login.username, login.password) if login is not None else None
        try:
            reply = self.client.get(realm, params=query, auth=auth)
        except httpx.HTTPError as exc:
            raise ArtifactUnreachableError(
                f"the token service of {self.reference.registry} did not answer for {self.uri} "
                f"({type(exc).__name__}); check that it is up"
            ) from exc
        if reply.status_code != 200:
            self.failed(
                reply.status_code, b"", f"artifact {self.uri} (a token from {shown(realm)})"
            )
        try:
            answer = reply.json()
            token = answer.get("token") or answer.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if not isinstance(token, str) or not token:
            raise ArtifactError(
                f"the token service of {self.reference.registry} answered without a token for "
                f"{self.uri}; check the registry's token service"
            )
        return token

    def failed(self, status: int, body: bytes, what: str) -> NoReturn:
        """The artifact error for an answer with ``status`` (and the registry's error codes)."""
        codes = [code.decode() for code in _ERROR_CODE.findall(body)[:3]]
        said = " ".join([f"HTTP {status}", *codes])
        where = self.reference.registry
        if status == 404 or _NOT_FOUND_CODES & set(codes):
            raise ArtifactNotFoundError(
                f"{what} not found at the registry {where} ({said}); check the repository and "
                f"the tag or digest, or push the artifact there (oras push)"
            )
        if status in (401, 403):
            raise ArtifactAccessDeniedError(
                f"access to {what} at the registry {where} was denied ({said}); "
                f"{self.logins.looked_at()}; give the replica a login that may pull "
                f"{self.reference.repository} there"
            )
        if status == 429 or status >= 500:
            raise ArtifactUnreachableError(
                f"the registry {where} failed to serve {what} ({said}); try again later"
            )
        raise ArtifactError(f"fetching {what} from the registry {where} failed ({said})")

    def unreachable(self, exc: BaseException) -> ArtifactUnreachableError:
        return ArtifactUnreachableError(
            f"the registry {self.reference.registry} ({self.base}) did not answer for "
            f"{self.uri} ({type(exc).__name__}); check the registry's address and that it is "
            f"up (loopback registries and those in {INSECURE_VARIABLE} are spoken to over "
            f"plain HTTP, others over HTTPS)"
        )
