"""``models:/name/version`` and ``models:/name@alias``: a model version of the MLflow registry.

The tracking server (``mlflow_registry.py``) says where the version's model directory is kept:
MLflow 3 registers a logged model (``models:/m-<id>``) whose ``artifact_uri`` is the directory;
older versions a ``runs:/`` path or the location itself. The directory is fetched whole, with its
``MLmodel`` file, from one of two places:

- ``s3://bucket/prefix``: straight from the store, through the ``s3://`` source (the store is
  ``MLFLOW_S3_ENDPOINT_URL`` as for MLflow's own client, else the AWS chain's), with the AWS
  credentials of the replica's environment;
- ``mlflow-artifacts:/path``: through the tracking server's artifact proxy, listed recursively
  and downloaded file by file, several at once. The proxy answers a Range request with the whole
  file and reads the whole object from its store for each request, so each file is one request.

An alias is a moving reference: :meth:`MlflowRemote.resolved` turns it into the version it
points to now, which a revision keeps. Which file of the directory a format loads is
``mlflow_models.py``'s business.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import posixpath
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from modelplane.api import Source
from modelplane.artifacts.cache import Staging
from modelplane.artifacts.mlflow_registry import Registry
from modelplane.artifacts.parts import FileJob, ReadRange, Transfer, download
from modelplane.artifacts.paths import Limits, safe_relative
from modelplane.errors import ArtifactError, ArtifactNotFoundError, ArtifactUnreachableError

_URI = re.compile(r"models:/(?P<name>[^/@]+)(/(?P<version>[0-9]+)|@(?P<alias>[A-Za-z0-9_-]+))")
_LOGGED_MODEL = re.compile(r"models:/(?P<id>m-[0-9a-f]+)/?")
CHUNK = 1 << 20


class MlflowRemote:
    """One ``models:/`` source, resolved with its tracking server and fetched into the cache."""

    def __init__(self, source: Source, limits: Limits, transfer: Transfer) -> None:
        found = _URI.fullmatch(source.uri)
        if found is None:
            raise ArtifactError(
                f"artifact {source.uri}: not a model version; write models:/name/version or "
                f"models:/name@alias"
            )
        self.uri, self.endpoint = source.uri, source.endpoint
        self.name: str = found["name"]
        self.version: str | None = found["version"]
        self.alias: str | None = found["alias"]
        self.limits, self.transfer = limits, transfer

    def _registry(self) -> Registry:
        return Registry(self.endpoint, self.uri, self.transfer)

    def resolved(self) -> str:
        registry = self._registry()
        try:
            return f"models:/{self.name}/{self._model_version(registry)['version']}"
        finally:
            registry.close()

    def download(self, staging: Staging) -> Path:
        """The model directory under ``staging.content``, every file fetched (not verified)."""
        registry = self._registry()
        try:
            location = self._location(registry, self._model_version(registry))
            scheme = urlsplit(location).scheme
            if scheme == "s3":
                return self._from_s3(location, staging)
            if scheme == "mlflow-artifacts":
                return self._from_proxy(registry, location, staging)
        finally:
            registry.close()
        raise ArtifactError(
            f"{self.uri}: the model version is stored at {location}, which modelplane cannot "
            f"fetch; it fetches MLflow artifacts kept in S3 (s3://) or served by the tracking "
            f"server (mlflow-artifacts:, mlflow server --artifacts-destination)"
        )

    def _model_version(self, registry: Registry) -> dict[str, Any]:
        if self.alias is not None:
            path, params = "/registered-models/alias", {"name": self.name, "alias": self.alias}
            what = f"alias {self.alias!r} of registered model {self.name!r}"
        else:
            assert self.version is not None  # the URI has one or the other
            path, params = "/model-versions/get", {"name": self.name, "version": self.version}
            what = f"version {self.version} of registered model {self.name!r}"
        try:
            found: dict[str, Any] = registry.get(path, params, what)["model_version"]
        except ArtifactNotFoundError as exc:
            raise ArtifactNotFoundError(f"{exc}; {self._existing(registry)}") from exc
        status = found.get("status", "READY")
        if status == "PENDING_REGISTRATION":
            raise ArtifactUnreachableError(
                f"{self.uri}: version {found['version']} is still being registered at "
                f"{registry.where}; it is fetched once it is READY"
            )
        if status != "READY":
            raise ArtifactError(
                f"{self.uri}: version {found['version']} is {status} at {registry.where}; "
                f"register the model again"
            )
        return found

    def _existing(self, registry: Registry) -> str:
        """What the registry has under the name, to name in a not-found message."""
        try:
            model = registry.get(
                "/registered-models/get", {"name": self.name}, f"registered model {self.name!r}"
            )
        except ArtifactNotFoundError:
            return f"no registered model is named {self.name!r} there"
        registered = model["registered_model"]
        versions = [int(v["version"]) for v in registered.get("latest_versions", [])]
        aliases = [f"@{a['alias']} -> {a['version']}" for a in registered.get("aliases", [])]
        latest = f"its latest version is {max(versions)}" if versions else "it has no versions"
        return f"{latest}; its aliases: {', '.join(aliases) or 'none'}"

    def _location(self, registry: Registry, version: dict[str, Any]) -> str:
        """Where the version's model directory is kept (its ``source``, resolved)."""
        source = str(version.get("source", ""))
        logged = _LOGGED_MODEL.fullmatch(source)
        if logged is not None:
            model_id = logged["id"]
            found = registry.get(f"/logged-models/{model_id}", {}, f"logged model {model_id}")
            return str(found["model"]["info"]["artifact_uri"])
        if source.startswith("runs:/"):
            run_id, _, path = source.removeprefix("runs:/").partition("/")
            run = registry.get("/runs/get", {"run_id": run_id}, f"run {run_id}")
            return posixpath.join(str(run["run"]["info"]["artifact_uri"]), path)
        return source

    def _from_s3(self, location: str, staging: Staging) -> Path:
        from modelplane.artifacts.s3 import S3Remote

        endpoint = os.environ.get("MLFLOW_S3_ENDPOINT_URL") or None
        directory = Source(uri=location.rstrip("/") + "/", endpoint=endpoint)
        try:
            return S3Remote(directory, self.limits, self.transfer).download(staging)
        except ArtifactError as exc:
            raise type(exc)(f"{self.uri} (stored at {location}): {exc}") from exc

    def _from_proxy(self, registry: Registry, location: str, staging: Staging) -> Path:
        parts = urlsplit(location)
        if parts.netloc:  # another server's proxy, reached as the tracking server is
            scheme = urlsplit(registry.base).scheme
            registry = Registry(f"{scheme}://{parts.netloc}", self.uri, self.transfer)
        proxied = ProxiedDirectory(registry, parts.path.strip("/"), self.limits, self.transfer)
        try:
            return proxied.download(staging)
        finally:
            if parts.netloc:
                registry.close()


@dataclasses.dataclass(frozen=True)
class ProxiedFile:
    relative: str  # inside the model directory, checked by safe_relative
    size: int


class ProxiedDirectory:
    """A directory of the tracking server's artifact proxy (``mlflow-artifacts:/path``)."""

    def __init__(self, registry: Registry, path: str, limits: Limits, transfer: Transfer):
        self.registry, self.path = registry, path
        self.limits, self.transfer = limits, transfer
        self.shown = f"mlflow-artifacts:/{path} at {registry.where}"

    def download(self, staging: Staging) -> Path:
        target = staging.content / (posixpath.basename(self.path) or "model")
        files = self._walk()
        jobs = [self._job(f, target, staging) for f in files]
        _drop_strays(target, {job.target for job in jobs})
        # One part per file: the proxy serves whole files only.
        largest = max(f.size for f in files)
        download(jobs, dataclasses.replace(self.transfer, part_size=max(largest, 1)))
        return target

    def _walk(self) -> list[ProxiedFile]:
        """Every file under the directory, breadth first, within the limits."""
        found: list[ProxiedFile] = []
        pending, entries, size = [""], 0, 0
        while pending:
            here = pending.pop()
            for entry in self.registry.list_artifacts(posixpath.join(self.path, here)):
                relative = safe_relative(posixpath.join(here, str(entry["path"])), self.shown)
                entries += 1
                if entry.get("is_dir"):
                    pending.append(relative)
                else:
                    found.append(ProxiedFile(relative, int(entry.get("file_size", 0))))
                    size += found[-1].size
                self.limits.check(entries, size, self.shown)
        if not found:
            raise ArtifactNotFoundError(
                f"the model directory {self.shown} holds no files; log the model again"
            )
        return found

    def _job(self, found: ProxiedFile, target: Path, staging: Staging) -> FileJob:
        path = posixpath.join(self.path, found.relative)
        return FileJob(
            read=self._reader(path),
            size=found.size,
            target=target / found.relative,
            journal=staging.state / hashlib.sha256(path.encode()).hexdigest(),
            identity=f"{path} {found.size}",
            uri=f"mlflow-artifacts:/{path}",
        )

    def _reader(self, path: str) -> ReadRange:
        def read(start: int, end: int, sink: Callable[[bytes], None]) -> None:
            # The proxy sends the whole file whatever the Range; only start 0 can come here.
            with self.registry.artifact(path, {}) as reply:
                for chunk in reply.iter_bytes(CHUNK):
                    sink(chunk)

        return read


def _drop_strays(target: Path, wanted: set[Path]) -> None:
    """Files an interrupted fetch left that the listing no longer has."""
    if target.is_dir():
        for path in target.rglob("*"):
            if path.is_file() and path not in wanted:
                path.unlink()
