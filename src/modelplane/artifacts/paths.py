"""What an artifact may contain: relative paths that stay inside it, within size limits.

A directory artifact comes from someone else's store, so its names are untrusted input: an
object key ``../../etc/cron.d/x``, an absolute path or a symlink pointing out would write or read
outside the directory the runtime loads from. Every source checks names here before it writes or
hashes anything, and counts files and bytes against :class:`Limits` before it downloads.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from modelplane.errors import UnsafeArtifactError

GiB = 1 << 30


@dataclass(frozen=True)
class Limits:
    """The most files and bytes one artifact may hold: a bound on what a source can make a
    replica download and hash."""

    max_files: int = 100_000
    max_bytes: int = 1024 * GiB

    def check(self, files: int, size: int, uri: str) -> None:
        if files > self.max_files:
            raise UnsafeArtifactError(
                f"artifact {uri} has more than {self.max_files} files; refusing it (raise the "
                f"limit with --max-artifact-files if that many are intended)"
            )
        if size > self.max_bytes:
            raise UnsafeArtifactError(
                f"artifact {uri} holds more than {self.max_bytes} bytes; refusing it (raise the "
                f"limit with --max-artifact-bytes if that much is intended)"
            )


def safe_relative(name: str, uri: str) -> str:
    """``name`` as a relative POSIX path that stays inside the artifact, or an error."""
    parts = name.split("/")
    if not name or name.startswith("/") or "\0" in name:
        raise UnsafeArtifactError(f"artifact {uri} has an entry {name!r} that is not relative")
    if any(part in ("", ".", "..") for part in parts):
        raise UnsafeArtifactError(
            f"artifact {uri} has an entry {name!r} that escapes its directory (empty, '.' or "
            f"'..' segments); refusing the whole artifact"
        )
    return name


def tree_files(root: Path, limits: Limits, uri: str) -> Iterator[tuple[str, Path]]:
    """Each regular file under ``root`` as (relative POSIX path, path), refusing symlinks that
    point out of ``root``, symlinked directories and special files; within ``limits``."""
    top = root.resolve()
    files = size = 0
    for directory, subdirectories, names in os.walk(top):
        here = Path(directory)
        for name in subdirectories:
            if (here / name).is_symlink():
                raise UnsafeArtifactError(
                    f"artifact {uri}: {_relative(here / name, top)} is a symlink to a directory, "
                    f"which modelplane does not follow; replace it by the directory itself"
                )
        for name in names:
            path = here / name
            relative = _relative(path, top)
            _check_file(path, top, relative, uri)
            files += 1
            size += path.stat().st_size
            limits.check(files, size, uri)
            yield relative, path


def _relative(path: Path, top: Path) -> str:
    return path.relative_to(top).as_posix()


def _check_file(path: Path, top: Path, relative: str, uri: str) -> None:
    if path.is_symlink():
        target = Path(os.path.realpath(path))
        if not target.is_relative_to(top):
            raise UnsafeArtifactError(
                f"artifact {uri}: {relative} is a symlink pointing out of the directory; "
                f"refusing the whole artifact"
            )
        if not target.exists():
            raise UnsafeArtifactError(f"artifact {uri}: {relative} is a dangling symlink")
    if not stat.S_ISREG(path.stat().st_mode):
        raise UnsafeArtifactError(f"artifact {uri}: {relative} is not a regular file")
