"""Fetching model artifacts into a local cache and verifying them against their pinned digest.

``file://`` sources are read in place (a relative path is taken from ``base_dir``);
``http(s)://`` sources are downloaded into the cache under their digest, written to a temporary
file and renamed only once verified, so a half-downloaded or tampered artifact is never loaded.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from urllib.parse import unquote, urlsplit

import httpx

from modelplane.api import Source
from modelplane.errors import ArtifactError

_CHUNK = 1 << 20


def default_cache_dir() -> Path:
    configured = os.environ.get("MODELPLANE_CACHE")
    if configured:
        return Path(configured)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "modelplane"


def fetch(source: Source, *, base_dir: Path, cache_dir: Path, timeout: float = 60) -> Path:
    """A local path holding the artifact, verified against ``source.sha256`` when set."""
    parts = urlsplit(source.uri)
    if parts.scheme == "file":
        path = local_path(source.uri, base_dir)
        if not path.exists():
            raise ArtifactError(f"artifact {source.uri} not found (looked at {path})")
        if source.sha256 is not None and path.is_file():
            verify(path, source.sha256, source.uri)
        return path
    return _download(source, cache_dir / "artifacts", timeout)


def local_path(uri: str, base_dir: Path) -> Path:
    """``file:///abs/path`` is absolute; ``file://rel/path`` is relative to ``base_dir``."""
    parts = urlsplit(uri)
    if parts.netloc in ("", "localhost"):
        return Path(unquote(parts.path))
    return base_dir / unquote(parts.netloc + parts.path)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def verify(path: Path, expected: str, uri: str) -> None:
    actual = sha256_of(path)
    if actual != expected:
        raise ArtifactError(
            f"artifact {uri} has sha256 {actual}, but the spec pins {expected}; "
            f"refusing to serve it (update source.sha256 if the new artifact is intended)"
        )


def _download(source: Source, cache: Path, timeout: float) -> Path:
    name = Path(urlsplit(source.uri).path).name or "artifact"
    key = source.sha256 or hashlib.sha256(source.uri.encode()).hexdigest()
    target = cache / key / name
    if source.sha256 is not None and target.exists():
        return target  # stored under its verified digest
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as handle:
        partial = Path(handle.name)
        try:
            with httpx.stream("GET", source.uri, timeout=timeout, follow_redirects=True) as reply:
                if reply.status_code != httpx.codes.OK:
                    raise ArtifactError(f"fetching {source.uri} failed: HTTP {reply.status_code}")
                for chunk in reply.iter_bytes(_CHUNK):
                    digest.update(chunk)
                    handle.write(chunk)
        except httpx.HTTPError as exc:
            partial.unlink(missing_ok=True)
            raise ArtifactError(f"fetching {source.uri} failed: {exc}") from exc
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
    if source.sha256 is not None and digest.hexdigest() != source.sha256:
        partial.unlink(missing_ok=True)
        raise ArtifactError(
            f"artifact {source.uri} has sha256 {digest.hexdigest()}, but the spec pins "
            f"{source.sha256}; refusing to serve it"
        )
    partial.replace(target)
    return target
