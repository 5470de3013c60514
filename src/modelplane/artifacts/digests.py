"""The digests that pin an artifact: a file's sha256, and a directory's manifest digest.

A directory is pinned by the sha256 of its *manifest*: one line per regular file,
``"<sha256>  <size>  <path>\\n"``, where ``path`` is the file's path relative to the directory
with ``/`` separators, lines sorted by path (code point order, the same as UTF-8 byte order).
Directories themselves, and empty ones, are not listed. The same text can be written with
coreutils (docs/model-sources.md shows how), so a user can pin a directory without modelplane.
Every source kind and the cache compute digests here, and only here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from modelplane.artifacts.paths import Limits, tree_files

CHUNK = 1 << 20


@dataclass(frozen=True)
class ManifestLine:
    """One file of a directory artifact, as the manifest lists it."""

    path: str  # relative, POSIX separators
    size: int
    sha256: str

    def __str__(self) -> str:
        return f"{self.sha256}  {self.size}  {self.path}\n"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def manifest_text(lines: Iterable[ManifestLine]) -> str:
    return "".join(str(line) for line in sorted(lines, key=lambda line: line.path))


def manifest_digest(lines: Iterable[ManifestLine]) -> str:
    return hashlib.sha256(manifest_text(lines).encode()).hexdigest()


def directory_manifest(root: Path, limits: Limits, uri: str) -> list[ManifestLine]:
    """The manifest of the directory ``root``, refusing paths that escape it (``uri`` names the
    artifact in errors)."""
    return [
        ManifestLine(relative, path.stat().st_size, file_sha256(path))
        for relative, path in tree_files(root, limits, uri)
    ]


def digest_of(path: Path, limits: Limits, uri: str) -> str:
    """The digest that pins ``path``: its sha256 if a file, its manifest digest if a directory."""
    if path.is_dir():
        return manifest_digest(directory_manifest(path, limits, uri))
    return file_sha256(path)
