"""From a Model's ``source`` to a verified local path: the one entry point of artifact delivery.

``file://`` artifacts are read in place. Remote ones (``http(s)://``, ``s3://``, ``oci://``,
``models:/``, ``hf://``) go through the content-addressed cache: a pinned digest is looked up
first and fetched at most once however many replicas ask together; an unpinned source is fetched
every time (its content may have changed) and then stored under the digest it turned out to
have. Either way the bytes are
verified before they are renamed into the cache, and the process holds the entries it uses
until :meth:`Fetcher.close` (or its exit), so eviction never takes them from under a replica.

The runtime (``runtime/loading.py``, ``runtime/server.py``) is the caller.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from modelplane.api import Source
from modelplane.artifacts.cache import Cache, Hold, Staging
from modelplane.artifacts.digests import digest_of
from modelplane.artifacts.files import local_artifact
from modelplane.artifacts.node_cache import NodeCache, reference_key
from modelplane.artifacts.parts import Transfer
from modelplane.artifacts.paths import Limits
from modelplane.artifacts.references import IMMUTABLE_SCHEMES, source_is_immutable
from modelplane.artifacts.verifying import check_digest, shown
from modelplane.errors import ArtifactError
from modelplane.telemetry.artifact_metrics import ArtifactMetrics

log = logging.getLogger("modelplane.artifacts")


class Remote(Protocol):
    """A source kind that downloads into the cache's staging area."""

    uri: str

    def resolved(self) -> str:
        """The source's immutable reference: the URI itself where it names no moving reference;
        else the tag, alias or branch resolved with the store (a digest, a version, a commit)."""
        ...

    def download(self, staging: Staging) -> Path:
        """The artifact, all of it, under ``staging.content`` (verified by the caller)."""
        ...


@dataclass(frozen=True)
class Fetched:
    """A verified artifact on this machine."""

    path: Path
    digest: str | None  # the file's sha256 or the directory's manifest digest; None: an
    # unpinned file:// source, read in place and not hashed


@dataclass(frozen=True)
class FetchSettings:
    limits: Limits = field(default_factory=Limits)
    transfer: Transfer = field(default_factory=Transfer)
    node_cache: str | None = None  # the URL of this node's cache agent (on a cluster)


def _http(source: Source, settings: FetchSettings) -> Remote:
    from modelplane.artifacts.http import HttpRemote

    return HttpRemote(source, settings.limits, settings.transfer)


def _s3(source: Source, settings: FetchSettings) -> Remote:
    from modelplane.artifacts.s3 import S3Remote  # boto3 loads only when needed

    return S3Remote(source, settings.limits, settings.transfer)


def _hf(source: Source, settings: FetchSettings) -> Remote:
    from modelplane.artifacts.hub import HubRemote  # huggingface_hub loads only when needed

    return HubRemote(source, settings.limits, settings.transfer)


def _oci(source: Source, settings: FetchSettings) -> Remote:
    from modelplane.artifacts.oci import OciRemote

    return OciRemote(source, settings.limits, settings.transfer)


def _mlflow(source: Source, settings: FetchSettings) -> Remote:
    from modelplane.artifacts.mlflow import MlflowRemote

    return MlflowRemote(source, settings.limits, settings.transfer)


# Each remote source kind by its URI scheme; a kind's module loads when a source needs it.
REMOTES: dict[str, Callable[[Source, FetchSettings], Remote]] = {
    "http": _http,
    "https": _http,
    "s3": _s3,
    "hf": _hf,
    "oci": _oci,
    "models": _mlflow,
}


def remote(source: Source, settings: FetchSettings) -> Remote:
    """The remote source kind that serves ``source`` (``file://`` is not remote)."""
    scheme = urlsplit(source.uri).scheme
    if scheme not in REMOTES:
        raise ArtifactError(f"{scheme}:// sources cannot be fetched by this version")
    return REMOTES[scheme](source, settings)


def default_cache_dir() -> Path:
    """``$MODELPLANE_CACHE``, else ``$XDG_CACHE_HOME/modelplane``, else ``~/.cache/modelplane``."""
    configured = os.environ.get("MODELPLANE_CACHE")
    if configured:
        return Path(configured)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "modelplane"


def artifact_cache(cache_dir: Path, max_bytes: int | None = None) -> Cache:
    """The artifact cache under a modelplane cache directory."""
    return Cache(cache_dir / "artifacts", max_bytes)


class Fetcher:
    """Fetches sources into ``cache``; relative ``file://`` paths start at ``base_dir``."""

    def __init__(
        self,
        cache: Cache,
        base_dir: Path,
        settings: FetchSettings | None = None,
        metrics: ArtifactMetrics | None = None,
    ):
        self.cache, self.base_dir = cache, base_dir
        self.settings = settings or FetchSettings()
        self.metrics = metrics
        self.node = NodeCache(self.settings.node_cache) if self.settings.node_cache else None
        self._holds: list[Hold] = []

    def fetch(self, source: Source) -> Path:
        """A local path holding the artifact, verified against ``source.sha256`` when set."""
        return self.fetched(source).path

    def fetched(self, source: Source) -> Fetched:
        """The artifact and its digest, verified against ``source.sha256`` when set."""
        try:
            return self._fetched(source)
        except ArtifactError as exc:
            if self.metrics is not None:
                reason = type(exc).__name__.removeprefix("Artifact").removesuffix("Error")
                kind = urlsplit(source.uri).scheme
                self.metrics.errors.labels(kind, reason or "Failed").inc()
            raise

    def _fetched(self, source: Source) -> Fetched:
        if urlsplit(source.uri).scheme == "file":
            path = local_artifact(source, self.base_dir, self.settings.limits)
            return Fetched(path, source.sha256)
        if source.sha256 is not None:
            return Fetched(self._pinned(source, source.sha256), source.sha256)
        return self._unpinned(source)

    def hold(self, digest: str) -> None:
        """Keep the entry of ``digest`` from eviction until :meth:`close` (for an artifact
        another process fetched for this one)."""
        self._holds.append(self.cache.hold(digest))

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Let eviction take the entries this fetcher handed out."""
        for hold in self._holds:
            hold.close()
        self._holds.clear()

    def pin(self, source: Source) -> Source:
        """``source`` with its moving reference (a tag, an alias, a branch) resolved to the
        immutable one, for a new revision to keep; an immutable source is returned as it is."""
        if urlsplit(source.uri).scheme not in IMMUTABLE_SCHEMES:
            return source  # files, URLs and objects name no tag: nothing to ask their store
        pinned = remote(source, self.settings).resolved()
        return source if pinned == source.uri else source.model_copy(update={"uri": pinned})

    def _remote(self, source: Source) -> Remote:
        return remote(source, self.settings)

    def _pinned(self, source: Source, digest: str) -> Path:
        self._holds.append(self.cache.hold(digest))
        found = self.cache.lookup(digest)
        if found is not None:
            self._hit(source)
            return found  # the store is not asked at all
        with self.cache.fetching(digest) as staging:
            found = self.cache.lookup(digest)  # fetched by whoever held the lock before us
            if found is not None:
                self._hit(source)
                return found
            if self._from_node(source, digest, staging):
                return self.cache.install(staging, digest, shown(source.uri))
            remote = self._remote(source)
            content = self._download(remote, staging)
            actual = digest_of(content, self.settings.limits, remote.uri)
            if actual != digest:
                staging.discard()
                check_digest(remote.uri, digest, actual, content.is_dir())
            installed = self.cache.install(staging, digest, shown(remote.uri))
        if self.node is not None:
            self.node.put(digest, installed)
        return installed

    def _unpinned(self, source: Source) -> Fetched:
        # An immutable reference (an OCI digest, a hub commit, an MLflow version) names the same
        # content forever: once fetched here, or by another pod of this node, it is that digest.
        immutable, reference = source_is_immutable(source), reference_key(source)
        if immutable:
            known = self.cache.recall(reference)
            if known is None and self.node is not None:
                known = self.node.digest(source)
            if known is not None:
                return Fetched(self._pinned(source, known), known)
        with self.cache.fetching("unpinned-" + reference) as staging:
            remote = self._remote(source)
            content = self._download(remote, staging)
            digest = digest_of(content, self.settings.limits, remote.uri)
            self._holds.append(self.cache.hold(digest))
            installed = self.cache.install(staging, digest, shown(remote.uri))
        if immutable:
            self.cache.remember(reference, digest)
        if self.node is not None:
            self.node.put(digest, installed, source if immutable else None)
        return Fetched(installed, digest)

    def _from_node(self, source: Source, digest: str, staging: Staging) -> bool:
        """Whether the node cache filled ``staging`` with the artifact of ``digest``."""
        if self.node is None:
            return False
        got = self.node.get(digest, staging.content, self.settings.limits, shown(source.uri))
        if got is None:
            return False
        if digest_of(got, self.settings.limits, source.uri) != digest:
            log.warning("the node cache sent %s with the wrong digest; fetching it", source.uri)
            staging.discard()
            return False
        log.info("%s came from the node cache", shown(source.uri))
        self._hit(source)
        return True

    def _download(self, remote: Remote, staging: Staging) -> Path:
        kind = urlsplit(remote.uri).scheme
        started = time.monotonic()
        log.info("fetching %s", shown(remote.uri))
        if self.metrics is not None:
            self.metrics.misses.labels(kind).inc()
        content = remote.download(staging)
        if self.metrics is not None:
            self.metrics.fetched_bytes.labels(kind).inc(_size(content))
            self.metrics.duration.labels(kind).observe(time.monotonic() - started)
        return content

    def _hit(self, source: Source) -> None:
        if self.metrics is not None:
            self.metrics.hits.labels(urlsplit(source.uri).scheme).inc()


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())
