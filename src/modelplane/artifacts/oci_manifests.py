"""The manifests of ``oci://`` sources: OCI image manifests and indexes, and Docker's schema 2
manifests and manifest lists, read from their JSON into the few values a fetch needs.

An index (a multi-platform image) is followed to one image manifest: linux/amd64's, or its only
entry (attestations aside); a model artifact has the same bytes on every platform. ``oci.py``
is the caller.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TypedDict, cast

from modelplane.errors import ArtifactError

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
ACCEPTED = (OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST)
INDEXES = frozenset({OCI_INDEX, DOCKER_LIST})
TITLE = "org.opencontainers.image.title"
UNPACK = "io.deis.oras.content.unpack"  # ORAS: this layer is a directory, as tar+gzip
MAX_MANIFEST_BYTES = 4 << 20  # what registries accept; a bound on what is read into memory
_REFERENCE_TYPE = "vnd.docker.reference.type"  # marks an index's attestation entries


class RawPlatform(TypedDict, total=False):
    os: str
    architecture: str


class RawDescriptor(TypedDict, total=False):
    mediaType: str
    digest: str
    size: int
    annotations: dict[str, str]
    platform: RawPlatform


class RawManifest(TypedDict, total=False):
    schemaVersion: int
    mediaType: str
    config: RawDescriptor
    layers: list[RawDescriptor]
    manifests: list[RawDescriptor]


@dataclass(frozen=True)
class Descriptor:
    """One blob or manifest a manifest points at."""

    media_type: str
    digest: str  # "sha256:<hex>"
    size: int
    annotations: dict[str, str] = field(default_factory=dict)
    platform: str = ""  # "os/architecture", for an index's entries

    @property
    def hex(self) -> str:
        return self.digest.removeprefix("sha256:")

    @property
    def title(self) -> str | None:
        return self.annotations.get(TITLE)

    @property
    def unpack(self) -> bool:
        return self.annotations.get(UNPACK) == "true"


@dataclass(frozen=True)
class Manifest:
    """An image manifest (``layers``) or an index (``manifests``)."""

    media_type: str
    layers: list[Descriptor]
    manifests: list[Descriptor]

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEXES


def parse_manifest(body: bytes, content_type: str, where: str) -> Manifest:
    """The manifest in ``body``; ``content_type`` is the registry's when the JSON names none."""
    try:
        raw = cast(RawManifest, json.loads(body))
        media_type = raw.get("mediaType") or content_type.split(";")[0].strip()
        if media_type not in ACCEPTED:
            raise ArtifactError(
                f"{where} is a manifest of type {media_type or '(none)'}, which modelplane does "
                f"not read; push it as an OCI image manifest ({OCI_MANIFEST}) or index"
            )
        layers = [_descriptor(d, where) for d in raw.get("layers", [])]
        manifests = [_descriptor(d, where) for d in raw.get("manifests", [])]
    except (ValueError, TypeError, AttributeError, KeyError) as exc:
        raise ArtifactError(
            f"the manifest of {where} is not valid JSON of an OCI or Docker manifest ({exc})"
        ) from exc
    return Manifest(media_type, layers, manifests)


def _descriptor(raw: RawDescriptor, where: str) -> Descriptor:
    digest, size = raw["digest"], raw["size"]
    if not (digest.startswith("sha256:") and len(digest) == 71):
        raise ArtifactError(
            f"{where} names a blob by {digest!r}; modelplane verifies sha256 digests only"
        )
    if not isinstance(size, int) or size < 0:
        raise ArtifactError(f"{where} gives the blob {digest} a size of {size!r}")
    platform = raw.get("platform", {})
    return Descriptor(
        raw.get("mediaType", ""),
        digest,
        size,
        dict(raw.get("annotations") or {}),
        f"{platform.get('os', '')}/{platform.get('architecture', '')}" if platform else "",
    )


def choose_platform(index: Manifest, where: str) -> Descriptor:
    """linux/amd64's entry of ``index``, else its only one (attestations are not entries)."""
    entries = [m for m in index.manifests if _REFERENCE_TYPE not in m.annotations]
    for entry in entries:
        if entry.platform == "linux/amd64":
            return entry
    if len(entries) == 1:
        return entries[0]
    platforms = ", ".join(e.platform or "(none)" for e in entries) or "none"
    raise ArtifactError(
        f"{where} is an index of {len(entries)} manifests with no linux/amd64 one (platforms: "
        f"{platforms}); push the artifact with one manifest, or refer to one by its digest"
    )
