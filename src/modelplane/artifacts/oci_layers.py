"""Tar layers of ``oci://`` artifacts unpacked into a directory, refusing whatever would escape it.

Two kinds of archive arrive here: a directory ORAS pushed (a tar+gzip whose entries sit under the
directory's name), and the filesystem layers of a "modelcar" image, applied in order, of which
only the ``models/`` directory is kept. A layer is someone else's input: an entry with an absolute
name or ``..`` segments, a symlink or hard link pointing out of the directory, a device file or a
FIFO refuses the whole artifact, naming the entry; files and bytes count against :class:`Limits`
as they are written, so a small compressed layer cannot fill the disk. Image layers may delete
what lower layers wrote with whiteouts (``.wh.<name>``, and ``.wh..wh..opq`` for a whole
directory's earlier content). ``oci.py`` is the caller; the blobs are verified before they come.
"""

from __future__ import annotations

import posixpath
import shutil
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

from modelplane.artifacts.paths import Limits, safe_relative
from modelplane.errors import ArtifactError, UnsafeArtifactError

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"


@dataclass
class Unpacking:
    """One artifact's unpacking into ``target``: what it may hold, and what it holds so far."""

    target: Path
    prefix: str  # the archive's directory that becomes ``target``
    limits: Limits
    uri: str
    whiteouts: bool  # image layers: honour .wh. entries
    files: int = 0
    size: int = 0
    written: set[str] = field(default_factory=set)  # by the layer being applied

    def layer(self, blob: Path, digest: str) -> None:
        """Apply the tar (plain or gzip) ``blob`` over what earlier layers wrote."""
        self.target.mkdir(parents=True, exist_ok=True)
        self.written = set()
        try:
            with tarfile.open(blob, "r:*") as archive:
                for member in archive:
                    self._entry(archive, member)
        except tarfile.FilterError as exc:
            raise UnsafeArtifactError(
                f"artifact {self.uri}: layer {digest} has an entry {exc.tarinfo.name!r} that "
                f"would escape its directory ({exc}); refusing the whole artifact"
            ) from exc
        except (tarfile.TarError, KeyError, EOFError) as exc:
            raise ArtifactError(
                f"artifact {self.uri}: layer {digest} is not a tar archive, plain or gzip "
                f"({exc}); zstd layers are not supported, push the layer as tar+gzip"
            ) from exc

    def _entry(self, archive: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        raw = member.name
        if raw.startswith("/"):
            raise UnsafeArtifactError(
                f"artifact {self.uri} has an entry {raw!r} with an absolute path; refusing the "
                f"whole artifact"
            )
        name = raw.removeprefix("./").rstrip("/")
        if name in ("", "."):
            return
        safe_relative(name, self.uri)
        base = posixpath.basename(name)
        if self.whiteouts and base.startswith(WHITEOUT):
            self._whiteout(posixpath.dirname(name), base)
            return
        relative = self._inside(name)
        if relative is None:
            return  # outside the directory that is kept: not written at all
        if relative == "":
            if not member.isdir():
                raise ArtifactError(
                    f"artifact {self.uri}: {self.prefix} in layer is not a directory but "
                    f"{raw!r} of another kind; the model must be a directory there"
                )
            return
        self._check(member, raw, relative)
        _make_room(self.target / relative, member.isdir())
        link = self._inside(member.linkname.removeprefix("./")) if member.islnk() else None
        changed = member.replace(name=relative, linkname=link or member.linkname, deep=False)
        archive.extract(changed, self.target, filter="data")
        self.written.add(relative)

    def _inside(self, name: str) -> str | None:
        """``name`` relative to the kept directory, or None if it lies outside."""
        if name == self.prefix:
            return ""
        return name[len(self.prefix) + 1 :] if name.startswith(self.prefix + "/") else None

    def _check(self, member: tarfile.TarInfo, raw: str, relative: str) -> None:
        if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
            raise UnsafeArtifactError(
                f"artifact {self.uri} has an entry {raw!r} that is a device file or a FIFO; "
                f"refusing the whole artifact"
            )
        if member.issym() or member.islnk():
            if member.issym():
                pointed = posixpath.join(posixpath.dirname(relative), member.linkname)
            else:
                pointed = self._inside(member.linkname.removeprefix("./")) or "../"
            escapes = posixpath.normpath(pointed).split("/")[0] == ".."
            if member.linkname.startswith("/") or escapes:
                raise UnsafeArtifactError(
                    f"artifact {self.uri} has an entry {raw!r} that links to "
                    f"{member.linkname!r}, out of the directory; refusing the whole artifact"
                )
        if member.isfile():
            self.files += 1
            self.size += member.size
            self.limits.check(self.files, self.size, self.uri)

    def _whiteout(self, directory: str, base: str) -> None:
        """Delete what lower layers wrote: one path, or a directory's whole content."""
        victim = directory if base == OPAQUE else posixpath.join(directory, base[len(WHITEOUT) :])
        above = victim == "" or self.prefix.startswith(victim + "/") or victim == self.prefix
        relative = "" if above else self._inside(victim)
        if relative is None:
            return
        path = self.target / relative
        if base == OPAQUE or above:
            self._empty(path, relative)
        elif path.is_symlink() or path.is_file():
            path.unlink()
        elif path.is_dir():
            shutil.rmtree(path)

    def _empty(self, directory: Path, relative: str) -> None:
        """``directory`` less what lower layers put there (this layer's entries stay)."""
        if not directory.is_dir() or directory.is_symlink():
            return
        for child in directory.iterdir():
            name = posixpath.join(relative, child.name) if relative else child.name
            if any(w == name or w.startswith(name + "/") for w in self.written):
                continue
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()


def _make_room(path: Path, directory: bool) -> None:
    """A lower layer's entry at ``path`` is replaced, never written through: a symlink there
    must not carry the new content elsewhere."""
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        path.unlink()
    elif path.is_dir() and not directory:
        shutil.rmtree(path)
