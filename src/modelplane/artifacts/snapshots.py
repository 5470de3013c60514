"""A commit of a hub repository, from the hub cache's snapshot into a plain directory.

The hub cache keeps each file once, as ``blobs/<etag>``, and each commit as
``snapshots/<commit>/<path>`` symlinks to those blobs. An artifact may hold no symlink that
points out of it, so the files are placed under the staging area themselves: hard-linked where
the two caches share a file system, copied where not. Each is checked against the content
address it is stored under (a sha256 for large files, git's blob sha1 for the others), so a
damaged hub cache is refused here rather than served. ``hub.py`` is the caller.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from pathlib import Path

from modelplane.artifacts.paths import Limits, safe_relative
from modelplane.errors import DigestMismatchError, UnsafeArtifactError

CHUNK = 1 << 20
SHA256 = re.compile(r"[0-9a-f]{64}")  # the ETag of a file stored with LFS or Xet
GIT_SHA1 = re.compile(r"[0-9a-f]{40}")  # the ETag of a file stored in git itself


def place_snapshot(snapshot: Path, target: Path, limits: Limits, uri: str, repo: str) -> None:
    """Every file of ``snapshot`` (of the repository ``repo``) under ``target``, which is
    emptied first: what an interrupted fetch left there is redone from the hub cache, where the
    bytes already are."""
    blobs = (snapshot.parent.parent / "blobs").resolve()
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    size = 0
    for files, (relative, source) in enumerate(_snapshot_files(snapshot, uri), start=1):
        blob = Path(os.path.realpath(source))
        if source.is_symlink() and not blob.is_relative_to(blobs):
            raise UnsafeArtifactError(
                f"artifact {uri}: {relative} in the hub cache points out of its blobs; "
                f"refusing the whole artifact"
            )
        size += blob.stat().st_size
        limits.check(files, size, uri)
        placed = target / relative
        placed.parent.mkdir(parents=True, exist_ok=True)
        _link_or_copy(blob, placed)
        if source.is_symlink():
            _check_address(placed, blob.name, f"{uri}: {relative}", repo)


def _snapshot_files(snapshot: Path, uri: str) -> list[tuple[str, Path]]:
    found = []
    for directory, subdirectories, names in os.walk(snapshot):
        here = Path(directory)
        for name in subdirectories:
            if (here / name).is_symlink():
                raise UnsafeArtifactError(
                    f"artifact {uri}: {(here / name).relative_to(snapshot)} in the hub cache is "
                    f"a symlink to a directory, which the hub never writes; refusing it"
                )
        for name in names:
            path = here / name
            found.append((safe_relative(path.relative_to(snapshot).as_posix(), uri), path))
    return found


def _link_or_copy(blob: Path, placed: Path) -> None:
    try:
        os.link(blob, placed)
    except OSError:  # another file system, or links not allowed there
        shutil.copyfile(blob, placed)


def _check_address(path: Path, etag: str, shown: str, repo: str) -> None:
    """``path`` has the content ``etag`` names, when it names one (a hub of another make may
    use other ETags; source.sha256 still pins the whole)."""
    if SHA256.fullmatch(etag):
        digest = hashlib.sha256()
    elif GIT_SHA1.fullmatch(etag):
        digest = hashlib.sha1(usedforsecurity=False)
        digest.update(b"blob %d\0" % path.stat().st_size)  # git hashes a header, then the bytes
    else:
        return
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    if digest.hexdigest() != etag:
        raise DigestMismatchError(
            f"artifact {shown} in the hub cache does not hold the content it is stored under "
            f"({etag}); delete the repository from the hub cache (hf cache rm model/{repo}) and "
            f"fetch it again"
        )
