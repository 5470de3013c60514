"""``file://`` sources: a file or a directory on this machine, read in place, never copied.

``file:///abs/path`` is absolute; ``file://rel/path`` is relative to the runtime's base
directory (the working directory of ``modelplane up``). A pinned source is verified at every
load, a directory by its manifest digest; a directory is always checked for symlinks pointing out
of it and for its limits, pinned or not.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from modelplane.api import Source
from modelplane.artifacts.digests import digest_of
from modelplane.artifacts.paths import Limits, tree_files
from modelplane.artifacts.verifying import check_digest
from modelplane.errors import ArtifactNotFoundError


def local_path(uri: str, base_dir: Path) -> Path:
    """``file:///abs/path`` is absolute; ``file://rel/path`` is relative to ``base_dir``."""
    parts = urlsplit(uri)
    if parts.netloc in ("", "localhost"):
        return Path(unquote(parts.path))
    return base_dir / unquote(parts.netloc + parts.path)


def local_artifact(source: Source, base_dir: Path, limits: Limits) -> Path:
    """The verified local path of ``source``."""
    path = local_path(source.uri, base_dir)
    if not path.exists():
        raise ArtifactNotFoundError(
            f"artifact {source.uri} not found (looked at {path}); check the path, relative "
            f"paths start from {base_dir}"
        )
    if source.sha256 is not None:
        check_digest(source.uri, source.sha256, digest_of(path, limits, source.uri), path.is_dir())
    elif path.is_dir():
        for _ in tree_files(path, limits, source.uri):
            pass  # refuses what escapes the directory, or is over the limits
    return path
