"""The MLflow tracking server's REST API, as much of it as ``models:/`` sources need.

Plain HTTP through httpx, so modelplane does not carry MLflow's own dependencies. The server is
``source.endpoint``, else ``MLFLOW_TRACKING_URI``; credentials come from the environment MLflow's
own client reads (``MLFLOW_TRACKING_TOKEN``, else ``MLFLOW_TRACKING_USERNAME`` and
``MLFLOW_TRACKING_PASSWORD``) and never appear in a message. Answers are mapped to the artifact
errors here; ``mlflow.py`` is the caller.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn
from urllib.parse import urlsplit

import httpx

from modelplane.artifacts.parts import Transfer
from modelplane.artifacts.verifying import shown
from modelplane.errors import (
    ArtifactAccessDeniedError,
    ArtifactError,
    ArtifactNotFoundError,
    ArtifactUnreachableError,
)

API = "/api/2.0/mlflow"
ARTIFACTS_API = "/api/2.0/mlflow-artifacts/artifacts"
TIMEOUT = httpx.Timeout(60, connect=5)
# MLflow's basic-auth app does not tell a user whether a model they may not see exists.
_HIDDEN = " (MLflow's authentication answers 403 for a model that does not exist, too)"


def tracking_uri(endpoint: str | None, uri: str) -> str:
    """The tracking server's base URL, from ``source.endpoint`` or ``MLFLOW_TRACKING_URI``."""
    configured = endpoint or os.environ.get("MLFLOW_TRACKING_URI", "")
    if not configured:
        raise ArtifactError(
            f"artifact {uri}: no MLflow tracking server to ask; set source.endpoint or "
            f"MLFLOW_TRACKING_URI to its URL (http://host:5000)"
        )
    scheme = urlsplit(configured).scheme
    if scheme not in ("http", "https"):
        raise ArtifactError(
            f"artifact {uri}: the MLflow tracking URI is "
            f"{f'a {scheme}: URI' if scheme else 'a local path'}, not http(s); modelplane reaches "
            f"the registry through a tracking server (mlflow server), not its database or "
            f"directory"
        )
    return configured.rstrip("/")


def _auth() -> httpx.Auth | None:
    token = os.environ.get("MLFLOW_TRACKING_TOKEN")
    if token:
        return _Bearer(token)
    user = os.environ.get("MLFLOW_TRACKING_USERNAME")
    if user:
        return httpx.BasicAuth(user, os.environ.get("MLFLOW_TRACKING_PASSWORD", ""))
    return None


class _Bearer(httpx.Auth):
    def __init__(self, token: str) -> None:
        self._header = f"Bearer {token}"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = self._header
        yield request


def _verify() -> str | bool:
    """TLS settings MLflow's own client reads: a CA bundle, or no verification at all."""
    if os.environ.get("MLFLOW_TRACKING_INSECURE_TLS", "").lower() == "true":
        return False
    return os.environ.get("MLFLOW_TRACKING_SERVER_CERT_PATH") or True


class Registry:
    """One tracking server, asked on behalf of the source ``uri`` (for messages)."""

    def __init__(self, endpoint: str | None, uri: str, transfer: Transfer) -> None:
        self.uri, self.transfer = uri, transfer
        self.base = tracking_uri(endpoint, uri)
        self.where = shown(self.base)
        self.client = httpx.Client(
            base_url=self.base, auth=_auth(), verify=_verify(), timeout=TIMEOUT,
            follow_redirects=True,
        )  # fmt: skip

    def close(self) -> None:
        self.client.close()

    def get(self, path: str, params: dict[str, str], what: str) -> dict[str, Any]:
        """The JSON answer of ``GET {API}{path}``; ``what`` names the object in messages."""
        reply = self._retried(lambda: self.client.get(API + path, params=params))
        if reply.status_code != httpx.codes.OK:
            self.failed(reply, what)
        found: dict[str, Any] = reply.json()
        return found

    @contextmanager
    def artifact(self, path: str, headers: dict[str, str]) -> Iterator[httpx.Response]:
        """The streamed answer of the artifact proxy for one file (checked: 200 or 206)."""
        try:
            with self.client.stream("GET", f"{ARTIFACTS_API}/{path}", headers=headers) as reply:
                if reply.status_code not in (httpx.codes.OK, httpx.codes.PARTIAL_CONTENT):
                    reply.read()
                    self.failed(reply, f"artifact {path}")
                yield reply
        except httpx.HTTPError as exc:
            raise self.unreachable(exc) from exc

    def list_artifacts(self, path: str) -> list[dict[str, Any]]:
        """The entries directly under ``path`` in the server's artifact proxy."""
        url = ARTIFACTS_API
        reply = self._retried(lambda: self.client.get(url, params={"path": path}))
        if reply.status_code != httpx.codes.OK:
            self.failed(reply, f"artifacts under {path}")
        files: list[dict[str, Any]] = reply.json().get("files", [])
        return files

    def _retried(self, call: Callable[[], httpx.Response]) -> httpx.Response:
        delay = self.transfer.first_backoff
        for attempt in range(1, self.transfer.attempts + 1):
            try:
                reply = call()
            except httpx.HTTPError as exc:
                if attempt == self.transfer.attempts:
                    raise self.unreachable(exc) from exc
            else:
                if reply.status_code < 500 or attempt == self.transfer.attempts:
                    return reply
            time.sleep(delay)  # backoff between tries of a failing server
            delay = min(delay * 2, self.transfer.max_backoff)
        raise AssertionError("unreachable: the last attempt raises or returns")

    def failed(self, reply: httpx.Response, what: str) -> NoReturn:
        status, (code, message) = reply.status_code, _error(reply)
        said = f"HTTP {status} {code}" if code else f"HTTP {status}"
        # MLflow answers an unknown alias with 400 INVALID_PARAMETER_VALUE, "... not found."
        if status == 404 or (
            status == 400 and message.lower().endswith(("not found", "not found."))
        ):
            raise ArtifactNotFoundError(f"{self.uri}: {what} not found at {self.where} ({said})")
        if status in (401, 403):
            raise ArtifactAccessDeniedError(
                f"{self.uri}: the MLflow tracking server {self.where} denied access to {what} "
                f"({said}); check MLFLOW_TRACKING_TOKEN, or MLFLOW_TRACKING_USERNAME and "
                f"MLFLOW_TRACKING_PASSWORD, and that they may read this model"
                + (_HIDDEN if status == 403 else "")
            )
        if status >= 500:
            raise ArtifactUnreachableError(
                f"{self.uri}: the MLflow tracking server {self.where} failed to answer for "
                f"{what} ({said}) after {self.transfer.attempts} tries; try again later"
            )
        raise ArtifactError(f"{self.uri}: asking {self.where} for {what} failed ({said})")

    def unreachable(self, exc: httpx.HTTPError) -> ArtifactUnreachableError:
        return ArtifactUnreachableError(
            f"{self.uri}: the MLflow tracking server {self.where} did not answer "
            f"({type(exc).__name__}); check source.endpoint or MLFLOW_TRACKING_URI, and that "
            f"the server is up"
        )


def _error(reply: httpx.Response) -> tuple[str, str]:
    """MLflow's error code and message, if the body is MLflow's JSON error (else empty)."""
    try:
        body = reply.json()
    except ValueError:
        return "", ""
    if not isinstance(body, dict):
        return "", ""
    return str(body.get("error_code", "")), str(body.get("message", ""))
