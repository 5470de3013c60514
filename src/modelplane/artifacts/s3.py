"""``s3://bucket/key`` (a file) and ``s3://bucket/prefix/`` (a directory), from AWS S3 or any
S3-compatible store.

boto3 does what only it should: find credentials through the standard AWS chain (environment,
shared config and profiles, web identity, container and instance roles), sign requests, list
prefixes. The bytes come through ranged GetObject calls that ``parts.py`` runs in parallel and
resumes. The store is ``source.endpoint``, else boto3's own resolution (``AWS_ENDPOINT_URL_S3``,
``AWS_ENDPOINT_URL``, then AWS). Errors are mapped to the artifact errors at this boundary and
name the source and the store, never a credential.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn
from urllib.parse import unquote, urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    NoCredentialsError,
    PartialCredentialsError,
)

from modelplane.api import Source
from modelplane.artifacts.cache import Staging
from modelplane.artifacts.parts import FileJob, ReadRange, Transfer, download
from modelplane.artifacts.paths import Limits, safe_relative
from modelplane.errors import (
    ArtifactAccessDeniedError,
    ArtifactError,
    ArtifactNotFoundError,
    ArtifactUnreachableError,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

CHUNK = 1 << 20
API_ATTEMPTS = 3  # botocore's own tries of one call (HEAD, LIST, each part's GET)
_ENDPOINT_VARIABLES = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")


@dataclass(frozen=True)
class S3Object:
    key: str
    size: int
    etag: str


@dataclass(frozen=True)
class S3Location:
    bucket: str
    key: str  # a prefix ending in "/" (or empty) for a directory

    @classmethod
    def parse(cls, uri: str) -> S3Location:
        parts = urlsplit(uri)
        return cls(parts.netloc, unquote(parts.path.lstrip("/")))

    @property
    def directory(self) -> bool:
        return self.key == "" or self.key.endswith("/")

    @property
    def name(self) -> str:
        """The artifact's name in the cache: the key's or prefix's last segment."""
        return self.key.rstrip("/").rsplit("/", 1)[-1] or self.bucket


class S3Remote:
    """One S3 source, fetched into a cache staging area."""

    def __init__(self, source: Source, limits: Limits, transfer: Transfer) -> None:
        self.uri = source.uri
        self.location = S3Location.parse(source.uri)
        self.limits, self.transfer = limits, transfer
        self.client = _client(source.endpoint, transfer)
        self.where = self.client.meta.endpoint_url

    def resolved(self) -> str:
        return self.uri  # no moving references: the content is pinned by source.sha256

    def download(self, staging: Staging) -> Path:
        """The artifact under ``staging.content``, every byte fetched (not yet verified)."""
        target = staging.content / self.location.name
        if self.location.directory:
            objects = self._list()
            jobs = [
                self._job(o, target / o.key[len(self.location.key) :], staging) for o in objects
            ]
            _drop_strays(target, {job.target for job in jobs})
        else:
            head = self._head()
            self.limits.check(1, head.size, self.uri)
            jobs = [self._job(head, target, staging)]
        download(jobs, self.transfer)
        return target

    def _job(self, found: S3Object, target: Path, staging: Staging) -> FileJob:
        journal = staging.state / hashlib.sha256(found.key.encode()).hexdigest()
        return FileJob(
            read=self._reader(found),
            size=found.size,
            target=target,
            journal=journal,
            identity=f"{found.etag} {found.size}",
            uri=f"s3://{self.location.bucket}/{found.key}",
        )

    def _reader(self, found: S3Object) -> ReadRange:
        def read(start: int, end: int, sink: Callable[[bytes], None]) -> None:
            try:
                reply = self.client.get_object(
                    Bucket=self.location.bucket, Key=found.key,
                    Range=f"bytes={start}-{end}", IfMatch=found.etag,
                )  # fmt: skip
                for chunk in reply["Body"].iter_chunks(CHUNK):
                    sink(chunk)
            except ClientError as exc:
                self._failed(exc)
            except (BotoCoreError, OSError) as exc:
                raise self._unreachable(exc) from exc

        return read

    def _head(self) -> S3Object:
        bucket, key = self.location.bucket, self.location.key
        try:
            found = self.client.head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if _status(exc) == 404 and self._is_prefix(key + "/"):
                raise ArtifactNotFoundError(
                    f"artifact {self.uri} is not an object but a directory at {self.where}; "
                    f"end the URI with '/' (s3://{bucket}/{key}/) to serve the directory"
                ) from exc
            self._failed(exc)
        except (BotoCoreError, OSError) as exc:
            raise self._unreachable(exc) from exc
        return S3Object(key, found["ContentLength"], found["ETag"])

    def _list(self) -> list[S3Object]:
        prefix, found, size = self.location.key, [], 0
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.location.bucket, Prefix=prefix
        )
        try:
            for page in pages:
                for item in page.get("Contents", []):
                    key, length = item["Key"], item["Size"]
                    if key.endswith("/") and length == 0:
                        continue  # a "folder" marker some tools write
                    safe_relative(key[len(prefix) :], self.uri)
                    found.append(S3Object(key, length, item["ETag"]))
                    size += length
                    self.limits.check(len(found), size, self.uri)
        except ClientError as exc:
            self._failed(exc)
        except (BotoCoreError, OSError) as exc:
            raise self._unreachable(exc) from exc
        if not found:
            raise ArtifactNotFoundError(
                f"artifact {self.uri}: no objects under that prefix at {self.where}; check the "
                f"bucket and prefix, or upload the artifact there"
            )
        return found

    def _is_prefix(self, prefix: str) -> bool:
        try:
            listed = self.client.list_objects_v2(
                Bucket=self.location.bucket, Prefix=prefix, MaxKeys=1
            )
        except (ClientError, BotoCoreError, OSError):
            return False
        return listed.get("KeyCount", 0) > 0

    def _failed(self, exc: ClientError) -> NoReturn:
        status, code = _status(exc), exc.response.get("Error", {}).get("Code", "")
        said = f"HTTP {status} {code}".strip() if code != str(status) else f"HTTP {status}"
        if status == 404 or code in ("NoSuchKey", "NoSuchBucket"):
            raise ArtifactNotFoundError(
                f"artifact {self.uri} not found at {self.where} ({said}); check the bucket and "
                f"key, or upload the artifact there"
            ) from exc
        if status in (401, 403):
            raise ArtifactAccessDeniedError(
                f"access to {self.uri} at {self.where} was denied ({said}); check the "
                f"credentials the replica gets from the AWS chain (AWS_ACCESS_KEY_ID and "
                f"AWS_SECRET_ACCESS_KEY, AWS_PROFILE, a web identity or instance role) and that "
                f"they may read this bucket"
            ) from exc
        if status == 412:
            raise ArtifactError(
                f"artifact {self.uri} changed at {self.where} while it was being fetched; the "
                f"next try fetches the new version"
            ) from exc
        if status >= 500 or code in ("SlowDown", "RequestTimeout"):
            raise ArtifactUnreachableError(
                f"the S3 store {self.where} failed to serve {self.uri} ({said}) after "
                f"{API_ATTEMPTS} tries; try again later"
            ) from exc
        raise ArtifactError(f"fetching {self.uri} from {self.where} failed ({said})") from exc

    def _unreachable(self, exc: BaseException) -> ArtifactError:
        if isinstance(exc, NoCredentialsError | PartialCredentialsError):
            return ArtifactAccessDeniedError(
                f"no usable AWS credentials to fetch {self.uri}: give the replica "
                f"AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, an AWS_PROFILE, a web identity "
                f"or an instance role"
            )
        return ArtifactUnreachableError(
            f"the S3 store {self.where} did not answer for {self.uri} after {API_ATTEMPTS} "
            f"tries ({type(exc).__name__}); check source.endpoint or AWS_ENDPOINT_URL, and "
            f"that the store is up"
        )


def _drop_strays(target: Path, wanted: set[Path]) -> None:
    """Files an interrupted fetch left that the listing no longer has (the prefix changed)."""
    if target.is_dir():
        for path in target.rglob("*"):
            if path.is_file() and path not in wanted:
                path.unlink()


def _status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


def _client(endpoint: str | None, transfer: Transfer) -> S3Client:
    custom = endpoint is not None or any(os.environ.get(v) for v in _ENDPOINT_VARIABLES)
    config = Config(
        retries={"mode": "standard", "total_max_attempts": API_ATTEMPTS},
        connect_timeout=5,
        read_timeout=60,
        max_pool_connections=transfer.workers + 2,
        # S3-compatible stores rarely have per-bucket DNS names; AWS itself prefers them.
        s3={"addressing_style": "path" if custom else "auto"},
    )
    return boto3.session.Session().client("s3", endpoint_url=endpoint, config=config)
