"""Backups of the embedded platform's state directory, and the checks a restore runs on one
before it replaces anything (``restoring.py`` puts a checked one in place).

A backup is one gzipped tar of what the platform keeps and cannot make again:

- ``state.db``: the Models with their status (so each rollout's position), the change log,
  revisions, events, API keys (hashes only), quotas and each team's usage, copied with
  SQLite's online backup API in one read transaction: writers go on meanwhile (WAL), and the
  copy is of one moment;
- ``gitops/*.json``: the git sources (with their webhook secrets) and what each last applied;
- ``admin.key``: the first admin key, when the platform made one;
- ``modelplane-backup.json``: when it was taken, the archive format, the database's schema
  version, and a SHA-256 of every other file.

Not kept, since the platform makes them again: revision manifests (from the revisions), git
mirrors (fetched again), replica logs, and a Prometheus beside's data. The control API serves a
backup (``GET /backup``) and ``modelplane backup`` writes one; both call ``write_backup``.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
import sqlite3
import tarfile
import tempfile
import zlib
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, BinaryIO

from pydantic import ValidationError

from modelplane.api import Model
from modelplane.backends.local.schema import (
    MIGRATIONS,
    SCHEMA_VERSION,
    migrate,
    refuse_newer,
    version_of,
)
from modelplane.errors import StateError

DATABASE = "state.db"
MANIFEST = "modelplane-backup.json"
FORMAT = 1  # of the archive: what is in it and where
_KEPT = re.compile(r"state\.db|admin\.key|gitops/[A-Za-z0-9_-][A-Za-z0-9._-]*\.json")
_TABLES = ("models", "changes", "revisions", "events", "api_keys", "quotas", "usage")


@dataclass(frozen=True)
class Backup:
    """A backup read back and checked, its files unpacked in ``directory`` with the database
    migrated to this code's schema."""

    directory: Path
    taken: str
    schema_version: int  # as it was taken
    counts: dict[str, int]  # Models, revisions, API keys, quotas, git sources (plurals in s)

    def summary(self) -> str:
        return ", ".join(f"{n} {what if n != 1 else what[:-1]}" for what, n in self.counts.items())


def write_backup(state_dir: Path, out: BinaryIO) -> dict[str, object]:
    """Write a backup of ``state_dir`` to ``out``; its manifest."""
    database = state_dir / DATABASE
    if not database.is_file():
        raise StateError(f"no platform state in {state_dir}: {DATABASE} is missing")
    with tempfile.TemporaryDirectory() as scratch:
        copies = Path(scratch)
        version = _snapshot(database, copies / DATABASE)
        names = [DATABASE, *_copy_kept(state_dir, copies)]
        manifest: dict[str, object] = {
            "format": FORMAT,
            "taken": datetime.now(UTC).replace(microsecond=0).isoformat(),
            "schemaVersion": version,
            "files": {name: _sha256(copies / name) for name in names},
        }
        with tarfile.open(fileobj=out, mode="w:gz") as archive:
            about = json.dumps(manifest, indent=1).encode()
            archive.addfile(_member(MANIFEST, len(about)), io.BytesIO(about))
            for name in names:
                with (copies / name).open("rb") as data:
                    archive.addfile(_member(name, (copies / name).stat().st_size), data)
    return manifest


def _snapshot(database: Path, copy: Path) -> int:
    """Copy the live database in one step (one read transaction); the copy's schema version."""
    with (
        closing(sqlite3.connect(f"{database.as_uri()}?mode=rw", uri=True)) as source,
        closing(sqlite3.connect(copy)) as target,
    ):
        source.backup(target)
        target.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside
        if version_of(target) == 0:  # a stopped directory from before versions: it is version 1
            migrate(target, f"{DATABASE} in a backup of {database.parent}", MIGRATIONS[:1])
        return version_of(target)


def _copy_kept(state_dir: Path, copies: Path) -> Iterator[str]:
    """Copy the files kept beside the database (each written whole, by a rename) into
    ``copies``; their names. One removed meanwhile (a git source gone) is left out."""
    for path in [state_dir / "admin.key", *sorted((state_dir / "gitops").glob("*.json"))]:
        name = path.relative_to(state_dir).as_posix()
        if not _KEPT.fullmatch(name):
            continue
        try:
            data = path.read_bytes()
        except (FileNotFoundError, IsADirectoryError):
            continue
        (copies / name).parent.mkdir(parents=True, exist_ok=True)
        (copies / name).write_bytes(data)
        yield name


def _sha256(path: Path) -> str:
    with path.open("rb") as data:
        return hashlib.file_digest(data, "sha256").hexdigest()


def _member(name: str, size: int) -> tarfile.TarInfo:
    member = tarfile.TarInfo(name)
    member.size, member.mode = size, 0o600
    member.mtime = int(datetime.now(UTC).timestamp())
    return member


def unpack(archive: Path, into: Path) -> Backup:
    """Read the backup ``archive`` into the empty directory ``into`` and check all of it: its
    manifest, every file against its checksum, the database's integrity and schema version, and
    that every Model in it reads. StateError says what is wrong; nothing outside ``into`` is
    touched."""
    try:
        with tarfile.open(archive, mode="r:gz") as opened:
            manifest = _unpack_files(opened, into, archive)
    except (tarfile.TarError, EOFError, zlib.error, OSError, ValueError) as exc:
        raise StateError(f"{archive} is damaged or not a modelplane backup ({exc})") from exc
    version = _check_database(into / DATABASE, archive)
    counts = _counts(into, archive)
    return Backup(into, str(manifest.get("taken", "")), version, counts)


def _unpack_files(opened: tarfile.TarFile, into: Path, archive: Path) -> dict[str, object]:
    members = {m.name: m for m in opened.getmembers()}
    if MANIFEST not in members:
        raise StateError(f"{archive} is not a modelplane backup: it has no {MANIFEST}")
    with _open(opened, members.pop(MANIFEST)) as about:
        found = json.loads(about.read())
    manifest: dict[str, object] = found if isinstance(found, dict) else {}
    made = manifest.get("format")
    if not isinstance(made, int) or made > FORMAT:
        raise StateError(
            f"{archive} is a backup of format {made!r}, which this modelplane (format {FORMAT}) "
            "cannot read: restore it with the modelplane that took it"
        )
    sums = manifest.get("files")
    if not isinstance(sums, dict) or DATABASE not in sums:
        raise StateError(f"{archive}: its {MANIFEST} lists no {DATABASE}")
    missing, unlisted = sorted(set(sums) - set(members)), sorted(set(members) - set(sums))
    if missing:
        raise StateError(
            f"{archive} is damaged or cut short: it lacks {', '.join(missing)}, which its "
            f"{MANIFEST} lists"
        )
    if unlisted:
        raise StateError(f"{archive}: {', '.join(unlisted)} not listed in its {MANIFEST}")
    for name, member in members.items():
        if not (member.isfile() and _KEPT.fullmatch(name)):
            raise StateError(f"{archive}: {name!r} is not a file a modelplane backup holds")
        target = into / name
        target.parent.mkdir(parents=True, exist_ok=True)
        with _open(opened, member) as data, target.open("wb") as written:
            shutil.copyfileobj(data, written)
        target.chmod(0o600)
        if _sha256(target) != sums[name]:
            raise StateError(
                f"{archive}: {name} does not match its checksum: the backup is damaged"
            )
    return manifest


def _open(opened: tarfile.TarFile, member: tarfile.TarInfo) -> IO[bytes]:
    handle = opened.extractfile(member)
    if handle is None:
        raise StateError(f"{member.name!r} in the backup is not a file")
    return handle


def _check_database(path: Path, archive: Path) -> int:
    """Integrity, schema version and tables of the unpacked database, migrated to this code's
    schema; the version it was taken at."""
    where = f"{DATABASE} in {archive}"
    try:
        with closing(sqlite3.connect(path, isolation_level=None)) as db:
            problems = [row[0] for row in db.execute("PRAGMA integrity_check").fetchall()]
            if problems != ["ok"]:
                first = " ".join(problems[0].split())[:300]
                raise StateError(f"{where} is damaged (integrity check: {first})")
            version = version_of(db)
            if version == 0:
                raise StateError(f"{where} is not a modelplane state database (no schema version)")
            refuse_newer(version, SCHEMA_VERSION, where)
            migrate(db, where)
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
    except sqlite3.DatabaseError as exc:
        raise StateError(f"{where} is damaged, or no database ({exc})") from exc
    missing = [t for t in _TABLES if t not in tables]
    if missing:
        raise StateError(f"{where} lacks the tables {', '.join(missing)}")
    return version


def _counts(into: Path, archive: Path) -> dict[str, int]:
    with closing(sqlite3.connect(into / DATABASE)) as db:
        bodies = db.execute("SELECT namespace, name, body FROM models").fetchall()
        counts = {
            what: int(db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])  # noqa: S608
            for what, table in (("revisions", "revisions"), ("API keys", "api_keys"),
                                ("quotas", "quotas"), ("usage hours", "usage"))
        }  # fmt: skip
    for namespace, name, body in bodies:
        try:
            Model.model_validate_json(body)
        except ValidationError as exc:
            raise StateError(f"{archive}: Model {namespace}/{name} does not read ({exc})") from exc
    return {"Models": len(bodies), **counts, "git sources": _sources(into, archive)}


def _sources(into: Path, archive: Path) -> int:
    path = into / "gitops" / "sources.json"
    if not path.exists():
        return 0
    try:
        sources = json.loads(path.read_text())
    except ValueError as exc:
        raise StateError(f"{archive}: gitops/sources.json does not read ({exc})") from exc
    if not isinstance(sources, list):
        raise StateError(f"{archive}: gitops/sources.json is not a list of git sources")
    return len(sources)
