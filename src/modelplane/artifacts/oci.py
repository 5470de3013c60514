"""``oci://registry[:port]/repository:tag`` and ``…@sha256:<digest>``: a model kept in an OCI
registry, as an ORAS artifact or as a "modelcar" image.

An ORAS artifact (``oras push``) holds files as layers titled with their names, and directories
as tar+gzip layers ORAS marks for unpacking; one layer is the artifact itself, several make a
directory. A modelcar image (KServe's layout: a small image with the model under ``/models``) has
untitled filesystem layers; they are applied in order and ``/models`` is the artifact.

A tag is resolved to the manifest's digest, which a revision keeps. Every manifest fetched by
digest and every blob is checked against its sha256 before use, blobs come in parallel ranged
parts (``parts.py``) that a restarted fetch resumes, and archives are unpacked by
``oci_layers``. The registry's protocol and logins are in ``oci_registry``.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from modelplane.api import Source
from modelplane.artifacts.cache import Staging
from modelplane.artifacts.digests import file_sha256
from modelplane.artifacts.oci_layers import Unpacking
from modelplane.artifacts.oci_manifests import (
    ACCEPTED,
    MAX_MANIFEST_BYTES,
    Descriptor,
    Manifest,
    choose_platform,
    parse_manifest,
)
from modelplane.artifacts.oci_registry import Reference, RegistryClient, is_digest
from modelplane.artifacts.parts import FileJob, ReadRange, Transfer, download
from modelplane.artifacts.paths import Limits, safe_relative
from modelplane.errors import ArtifactError, DigestMismatchError, UnsafeArtifactError

CHUNK = 1 << 20
ACCEPT = {"Accept": ", ".join(ACCEPTED)}
MODELS = "models"  # a modelcar image's model directory, /models


class OciRemote:
    """One ``oci://`` source, resolved and fetched into a cache staging area."""

    def __init__(self, source: Source, limits: Limits, transfer: Transfer) -> None:
        self.uri = source.uri
        self.reference = Reference.parse(source.uri)
        self.limits, self.transfer = limits, transfer

    @contextmanager
    def _registry(self) -> Iterator[RegistryClient]:
        with RegistryClient(self.uri, self.reference, self.transfer.workers + 2) as registry:
            yield registry

    def resolved(self) -> str:
        """The digest reference of the manifest the tag names now; a digest reference itself."""
        if self.reference.digest is not None:
            return self.uri
        with self._registry() as registry:
            asked = f"manifests/{self.reference.reference}"
            with registry.request("HEAD", asked, ACCEPT, f"artifact {self.uri}") as reply:
                digest = reply.headers.get("Docker-Content-Digest", "")
            if not is_digest(digest):  # not every registry says: the digest is of the bytes
                digest = self._manifest_bytes(registry, self.reference.reference)[2]
        return self.reference.pinned(digest)

    def download(self, staging: Staging) -> Path:
        """The artifact under ``staging.content``, every blob verified (the whole is verified
        by the caller)."""
        with self._registry() as registry:
            layers = self._image(registry).layers
            if not layers:
                raise ArtifactError(f"artifact {self.uri} has no layers: nothing to serve")
            self.limits.check(len(layers), sum(layer.size for layer in layers), self.uri)
            titled = [layer for layer in layers if layer.title is not None]
            if len(titled) == len(layers):
                return self._oras(registry, layers, staging)
            if not titled:
                return self._modelcar(registry, layers, staging)
        raise ArtifactError(
            f"artifact {self.uri} mixes titled layers (files pushed with oras) and untitled "
            f"ones (image layers); push either an ORAS artifact or a modelcar image"
        )

    def _image(self, registry: RegistryClient) -> Manifest:
        """The image manifest the reference names, through an index if it names one."""
        body, content_type, _ = self._manifest_bytes(registry, self.reference.reference)
        manifest = parse_manifest(body, content_type, self.uri)
        if not manifest.is_index:
            return manifest
        chosen = choose_platform(manifest, self.uri)
        body, content_type, _ = self._manifest_bytes(registry, chosen.digest)
        image = parse_manifest(body, content_type, f"{self.uri} ({chosen.digest})")
        if image.is_index:
            raise ArtifactError(f"artifact {self.uri}: an index inside an index is not read")
        return image

    def _manifest_bytes(self, registry: RegistryClient, reference: str) -> tuple[bytes, str, str]:
        """A manifest's bytes, its content type and its digest, checked when asked by digest."""
        body = bytearray()
        with registry.request(
            "GET", f"manifests/{reference}", ACCEPT, f"artifact {self.uri}"
        ) as reply:
            try:
                for chunk in reply.iter_bytes(CHUNK):
                    body += chunk
                    if len(body) > MAX_MANIFEST_BYTES:
                        raise ArtifactError(
                            f"the manifest of {self.uri} is over {MAX_MANIFEST_BYTES} bytes; "
                            f"refusing it"
                        )
            except httpx.HTTPError as exc:
                raise registry.unreachable(exc) from exc
            said = reply.headers.get("Docker-Content-Digest", "")
        actual = "sha256:" + hashlib.sha256(body).hexdigest()
        if is_digest(reference) and actual != reference:
            raise DigestMismatchError(
                f"the registry {self.reference.registry} answered for the manifest {reference} "
                f"of {self.uri} with bytes whose digest is {actual}; refusing them (the "
                f"registry's copy is damaged or was altered)"
            )
        return bytes(body), reply.headers.get("Content-Type", ""), said or actual

    def _oras(self, registry: RegistryClient, layers: list[Descriptor], staging: Staging) -> Path:
        """Files and directories pushed with ``oras push``: one is the artifact, several are
        a directory named for the repository."""
        titles = [safe_relative(layer.title or "", self.uri) for layer in layers]
        if len(set(titles)) != len(titles):
            raise UnsafeArtifactError(f"artifact {self.uri} has two layers with the same title")
        if len(layers) == 1:  # the artifact is that file or directory, by its own name
            artifact = staging.content / titles[0].rsplit("/", 1)[-1]
            places = [artifact]
        else:
            artifact = staging.content / self.reference.name
            places = [artifact / title for title in titles]
            _drop_strays(artifact, {artifact / title.split("/")[0] for title in titles})
        _keep_only(staging.content, artifact)
        archives = {
            layer.hex: staging.state / "blobs" / layer.hex for layer in layers if layer.unpack
        }
        blobs = [
            (layer, archives.get(layer.hex, place))
            for layer, place in zip(layers, places, strict=True)
        ]
        self._fetch(registry, blobs, staging)
        for layer, title, place in zip(layers, titles, places, strict=True):
            if layer.unpack:
                shutil.rmtree(place, ignore_errors=True)  # an interrupted unpacking
                unpacking = Unpacking(place, title, self.limits, self.uri, whiteouts=False)
                unpacking.layer(archives[layer.hex], layer.digest)
        return artifact

    def _modelcar(
        self, registry: RegistryClient, layers: list[Descriptor], staging: Staging
    ) -> Path:
        """An image's ``/models``, its layers applied in order."""
        for layer in layers:
            if "tar" not in layer.media_type:
                raise ArtifactError(
                    f"artifact {self.uri}: layer {layer.digest} is of type {layer.media_type} "
                    f"and has no title, so it is neither a file pushed with oras nor an image "
                    f"layer; push files with oras push, or an image with tar layers"
                )
        blobs = {layer.hex: (layer, staging.state / "blobs" / layer.hex) for layer in layers}
        self._fetch(registry, list(blobs.values()), staging)
        target = staging.content / self.reference.name
        _keep_only(staging.content, target)
        shutil.rmtree(target, ignore_errors=True)  # an interrupted unpacking
        unpacking = Unpacking(target, MODELS, self.limits, self.uri, whiteouts=True)
        for layer in layers:
            unpacking.layer(blobs[layer.hex][1], layer.digest)
        if not any(target.iterdir()):
            raise ArtifactError(
                f"artifact {self.uri} is an image with nothing under /{MODELS}; a modelcar "
                f"image holds its model in /{MODELS}"
            )
        return target

    def _fetch(
        self, registry: RegistryClient, blobs: list[tuple[Descriptor, Path]], staging: Staging
    ) -> None:
        """Each blob into its path, in parallel ranged parts, then checked against its digest."""
        jobs = []
        blobs = list({path: (layer, path) for layer, path in blobs}.values())  # each path once
        for layer, path in blobs:
            key = hashlib.sha256(str(path.relative_to(staging.directory)).encode()).hexdigest()
            jobs.append(
                FileJob(
                    read=self._reader(registry, layer),
                    size=layer.size,
                    target=path,
                    journal=staging.state / f"journal-{key}",
                    identity=f"{layer.digest} {layer.size}",
                    uri=f"{self.uri} (blob {layer.digest})",
                )
            )
        (staging.state / "blobs").mkdir(parents=True, exist_ok=True)
        download(jobs, self.transfer)
        for (layer, path), job in zip(blobs, jobs, strict=True):
            actual = file_sha256(path)
            if actual != layer.hex:
                path.unlink()
                job.journal.unlink(missing_ok=True)  # fetched again on the next try
                raise DigestMismatchError(
                    f"artifact {self.uri}: the blob {layer.digest} from the registry "
                    f"{self.reference.registry} has the digest sha256:{actual}; refusing it "
                    f"(the registry's copy is damaged or was altered)"
                )

    def _reader(self, registry: RegistryClient, layer: Descriptor) -> ReadRange:
        what = f"the blob {layer.digest} of {self.uri}"

        def read(start: int, end: int, sink: Callable[[bytes], None]) -> None:
            ranged = {"Range": f"bytes={start}-{end}"}
            with registry.request("GET", f"blobs/{layer.digest}", ranged, what) as reply:
                if reply.status_code == 200 and (start, end) != (0, layer.size - 1):
                    raise ArtifactError(
                        f"the registry {self.reference.registry} does not answer ranged requests "
                        f"for {what}; fetch it with a part size at least its size"
                    )
                try:
                    for chunk in reply.iter_bytes(CHUNK):
                        sink(chunk)
                except httpx.HTTPError as exc:
                    raise registry.unreachable(exc) from exc

        return read


def _keep_only(content: Path, wanted: Path) -> None:
    """What an earlier fetch of another manifest left beside the artifact (an unpinned tag
    moved): the cache takes exactly one entry from ``content``."""
    if content.is_dir():
        for path in content.iterdir():
            if path != wanted:
                shutil.rmtree(path) if path.is_dir() else path.unlink()


def _drop_strays(root: Path, wanted: set[Path]) -> None:
    if root.is_dir():
        for path in root.iterdir():
            if path not in wanted:
                shutil.rmtree(path) if path.is_dir() else path.unlink()
