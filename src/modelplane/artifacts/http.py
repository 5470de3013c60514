"""``http(s)://`` sources: one file, downloaded into the cache's staging area.

A plain web server has no listing, so a directory cannot come over HTTP; it comes from
``file://`` or ``s3://``. Transport failures and 5xx answers are tried again with backoff; a
4xx answer is final. Messages show the URL without its user, password or query.
"""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from modelplane.api import Source
from modelplane.artifacts.cache import Staging
from modelplane.artifacts.parts import Transfer
from modelplane.artifacts.paths import Limits
from modelplane.artifacts.verifying import shown
from modelplane.errors import (
    ArtifactAccessDeniedError,
    ArtifactError,
    ArtifactNotFoundError,
    ArtifactUnreachableError,
)

CHUNK = 1 << 20


class HttpRemote:
    def __init__(self, source: Source, limits: Limits, transfer: Transfer, timeout: float = 60):
        self.uri, self.shown = source.uri, shown(source.uri)
        if urlsplit(source.uri).path.endswith("/"):
            raise ArtifactError(
                f"artifact {self.shown}: a directory cannot be fetched over HTTP (no listing); "
                f"serve it from s3:// or file://, or point at one file"
            )
        self.limits, self.transfer, self.timeout = limits, transfer, timeout

    def resolved(self) -> str:
        return self.uri  # no moving references: the content is pinned by source.sha256

    def download(self, staging: Staging) -> Path:
        target = staging.content / (Path(urlsplit(self.uri).path).name or "artifact")
        target.parent.mkdir(parents=True, exist_ok=True)
        delay = self.transfer.first_backoff
        for attempt in range(1, self.transfer.attempts + 1):
            try:
                self._get(target)
            except ArtifactUnreachableError:
                if attempt == self.transfer.attempts:
                    raise
                time.sleep(delay)  # backoff between tries of a failing server
                delay = min(delay * 2, self.transfer.max_backoff)
            else:
                return target
        raise AssertionError("unreachable: the last attempt raises or returns")

    def _get(self, target: Path) -> None:
        written = 0
        try:
            with (
                httpx.stream("GET", self.uri, timeout=self.timeout, follow_redirects=True) as reply,
                target.open("wb") as handle,
            ):
                self._check(reply.status_code)
                for chunk in reply.iter_bytes(CHUNK):
                    written += len(chunk)
                    self.limits.check(1, written, self.shown)
                    handle.write(chunk)
        except httpx.HTTPError as exc:
            raise ArtifactUnreachableError(
                f"fetching {self.shown} failed after {self.transfer.attempts} tries "
                f"({type(exc).__name__}); check the URL and that the server is up"
            ) from exc

    def _check(self, status: int) -> None:
        if status == httpx.codes.OK:
            return
        if status in (404, 410):
            raise ArtifactNotFoundError(f"artifact {self.shown} not found (HTTP {status})")
        if status in (401, 403):
            raise ArtifactAccessDeniedError(f"access to {self.shown} was denied (HTTP {status})")
        if status >= 500:
            raise ArtifactUnreachableError(
                f"fetching {self.shown} failed: HTTP {status} after {self.transfer.attempts} tries"
            )
        raise ArtifactError(f"fetching {self.shown} failed: HTTP {status}")
