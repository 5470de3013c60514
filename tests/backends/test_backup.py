"""Backups of a state directory on real SQLite files: what goes in comes back whole, a copy taken
while a writer runs is of one moment, and anything that is not a whole backup of this or an
older schema is refused by ``unpack`` before a restore could replace anything."""

from __future__ import annotations

import hashlib
import io
import json
import sqlite3
import tarfile
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from modelplane.api import to_wire
from modelplane.api.quotas import QuotaSpec
from modelplane.apiserver.key_store import SqliteKeyStore
from modelplane.apiserver.quotas import SqliteQuotaStore
from modelplane.backends.local.backup import MANIFEST, unpack, write_backup
from modelplane.backends.local.restoring import restore
from modelplane.backends.local.schema import SCHEMA_VERSION
from modelplane.backends.local.store import SqliteStore
from modelplane.backends.local.usage import UsageStore
from modelplane.backends.usage_rollup import Requested, Usage
from modelplane.errors import StateError
from modelplane.security.roles import Role
from tests.models import onnx_model

SOURCES = [{"name": "team", "url": "/srv/models.git", "branch": "main", "path": "."}]


def _state(state_dir: Path) -> None:
    """A state directory as a platform leaves it: the database (two hours of a Model's usage
    among it), git sources, the admin key."""
    state_dir.mkdir(parents=True)
    db = state_dir / "state.db"
    store, keys, quotas = SqliteStore(db), SqliteKeyStore(db), SqliteQuotaStore(db)
    for name in ("iris", "fraud"):
        store.create(onnx_model(name, "team"))
        store.add_revision("team", name, f"{name}-digest", {"format": "onnx"})
    keys.create("deployer", {"team": Role.DEPLOYER})
    quotas.put("team", QuotaSpec(requests_per_second=5))
    used = Usage()
    used.held(3600.0, Requested(cpu=2))
    usage = UsageStore(db)
    usage.add({("team", "iris", "iris-r1", hour): used for hour in (0, 3600)})
    for opened in (store, keys, quotas, usage):
        opened.close()
    (state_dir / "gitops").mkdir()
    (state_dir / "gitops" / "sources.json").write_text(json.dumps(SOURCES))
    (state_dir / "gitops" / "team.json").write_text('{"lastAppliedCommit": "abc"}')
    (state_dir / "gitops" / "team.git").mkdir()  # a mirror: fetched again, not kept
    (state_dir / "admin.key").write_text("mpk_000000000000_secret\n")


def _backup(state_dir: Path, archive: Path) -> Path:
    with archive.open("wb") as out:
        write_backup(state_dir, out)
    return archive


def _rows(db: Path) -> dict[str, list[tuple[object, ...]]]:
    with sqlite3.connect(db) as opened:
        tables = ("models", "changes", "revisions", "events", "api_keys", "quotas", "usage")
        read = "SELECT * FROM {} ORDER BY 1"  # the tables named above
        found = {t: opened.execute(read.format(t)).fetchall() for t in tables}
    opened.close()
    return found


def test_a_backup_restored_into_a_fresh_directory_holds_everything(tmp_path: Path) -> None:
    _state(tmp_path / "old")
    archive = _backup(tmp_path / "old", tmp_path / "backup.tar.gz")
    fresh = tmp_path / "fresh"
    fresh.mkdir()

    checked = unpack(archive, fresh / ".staging")
    assert checked.counts == {"Models": 2, "revisions": 2, "API keys": 1, "quotas": 1,
                              "usage hours": 2, "git sources": 1}  # fmt: skip
    assert checked.schema_version == SCHEMA_VERSION
    assert restore(checked, fresh) is None  # nothing was there to move aside

    assert _rows(fresh / "state.db") == _rows(tmp_path / "old" / "state.db")
    for name in ("gitops/sources.json", "gitops/team.json", "admin.key"):
        assert (fresh / name).read_bytes() == (tmp_path / "old" / name).read_bytes()
        assert (fresh / name).stat().st_mode & 0o077 == 0
    assert not (fresh / "gitops" / "team.git").exists()
    store = SqliteStore(fresh / "state.db")
    assert [m.metadata.name for m in store.list_models("team")[0]] == ["fraud", "iris"]
    assert [r.name for r in store.revisions("team", "iris")] == ["iris-r1"]


def test_a_directory_from_before_versions_backs_up_as_version_1(tmp_path: Path) -> None:
    _state(tmp_path / "old")
    live = sqlite3.connect(tmp_path / "old" / "state.db")
    live.execute("PRAGMA user_version = 0")  # as a platform left it before versions were kept
    live.close()

    checked = unpack(_backup(tmp_path / "old", tmp_path / "b.tar.gz"), tmp_path / "into")

    assert checked.schema_version == 1
    assert checked.counts["Models"] == 2
    live = sqlite3.connect(tmp_path / "old" / "state.db")
    assert live.execute("PRAGMA user_version").fetchone()[0] == 0  # the original is untouched
    live.close()


def test_a_restore_moves_the_state_it_replaces_aside(tmp_path: Path) -> None:
    _state(tmp_path / "backed-up")
    archive = _backup(tmp_path / "backed-up", tmp_path / "backup.tar.gz")
    current = tmp_path / "current"
    current.mkdir()
    store = SqliteStore(current / "state.db")
    store.create(onnx_model("other", "default"))  # left open: its -wal goes aside with it
    (current / "revisions").mkdir()
    (current / "revisions" / "default.other-r1.yaml").write_text("spec of another state")
    (current / "logs").mkdir()

    aside = restore(unpack(archive, current / ".staging"), current)

    assert aside is not None
    assert aside.parent == current
    assert sorted(p.name for p in aside.iterdir()) == ["revisions", "state.db", "state.db-shm",
                                                       "state.db-wal"]  # fmt: skip
    store.close()
    assert [m.metadata.name for m in SqliteStore(aside / "state.db").list_models()[0]] == ["other"]
    restored = SqliteStore(current / "state.db")
    assert [m.metadata.name for m in restored.list_models()[0]] == ["fraud", "iris"]
    assert not (current / "revisions").exists()  # written again from the restored revisions
    assert (current / "logs").is_dir()


def test_a_backup_taken_while_a_writer_runs_is_of_one_moment(tmp_path: Path) -> None:
    _state(tmp_path / "state")
    store = SqliteStore(tmp_path / "state" / "state.db")
    started, done = threading.Event(), threading.Event()

    def write() -> None:
        for n in range(5000):  # within the change log that is kept
            store.update(onnx_model("iris", "team", scaling={"maxReplicas": n % 50 + 1}))
            store.record_event("team", "iris", "Normal", "Scaled", f"to {n % 50 + 1}")
            started.set()
            if done.is_set():
                return

    writer = threading.Thread(target=write)
    writer.start()
    started.wait(10)
    try:
        archives = [_backup(tmp_path / "state", tmp_path / f"{n}.tar.gz") for n in range(5)]
    finally:
        done.set()
        writer.join()
    versions = []
    for n, archive in enumerate(archives):
        copy = SqliteStore(unpack(archive, tmp_path / f"restored-{n}").directory / "state.db")
        models, version = copy.list_models()
        # Each Model is written with its change in one transaction: a torn copy would part them.
        latest = {c.model.key: to_wire(c.model) for c in copy.changes_since(0)}
        assert latest == {m.key: to_wire(m) for m in models}
        versions.append(version)
        copy.close()
    assert versions[0] > 2  # taken while the writer wrote
    store.close()


def _rewritten(
    archive: Path, target: Path, files: dict[str, bytes], *, sums: bool = True, **about: object
) -> Path:
    """``archive`` again with ``files`` in place of (or beside) its own, their checksums in the
    manifest (unless not ``sums``), and ``about`` over the manifest's fields."""
    contents = _contents(archive)
    manifest = json.loads(contents.pop(MANIFEST)) | about
    contents |= files
    if sums:
        manifest["files"] = {n: hashlib.sha256(d).hexdigest() for n, d in contents.items()}
    return _tar(target, {MANIFEST: json.dumps(manifest).encode(), **contents})


def _contents(archive: Path) -> dict[str, bytes]:
    with tarfile.open(archive) as source:
        return {m.name: _read(source, m) for m in source.getmembers()}


def _read(source: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    handle = source.extractfile(member)
    assert handle is not None
    return handle.read()


def _tar(target: Path, contents: dict[str, bytes]) -> Path:
    with tarfile.open(target, "w:gz") as out:
        for name, data in contents.items():
            member = tarfile.TarInfo(name)
            member.size = len(data)
            out.addfile(member, io.BytesIO(data))
    return target


def _database(archive: Path, tmp_path: Path, *pragmas: str) -> bytes:
    """The archive's database with ``pragmas`` run on it."""
    with tarfile.open(archive) as source:
        path = tmp_path / "edited.db"
        path.write_bytes(_read(source, source.getmember("state.db")))
    opened = sqlite3.connect(path)
    for pragma in pragmas:
        opened.execute(pragma)
    opened.close()
    return path.read_bytes()


def _damaged(good: Path, tmp_path: Path) -> bytes:
    """The archive's database with the cells of the quotas table's page overwritten: a file
    that opens, whose integrity check fails."""
    path = tmp_path / "damaged.db"
    path.write_bytes(_database(good, tmp_path))
    opened = sqlite3.connect(path)
    page = opened.execute("SELECT rootpage FROM sqlite_master WHERE name = 'quotas'").fetchone()[0]
    size = opened.execute("PRAGMA page_size").fetchone()[0]
    opened.close()
    damaged = bytearray(path.read_bytes())
    damaged[page * size - 200 : page * size] = b"\xff" * 200  # cells sit at a page's end
    return bytes(damaged)


Broken = Callable[[Path, Path], Path]  # (a good backup, scratch) -> a broken one

BROKEN: dict[str, tuple[Broken, str]] = {
    "not an archive": (
        lambda good, tmp: _write(tmp / "b", b"PK\x03\x04 a zip, say" * 50),
        "is damaged or not a modelplane backup",
    ),
    "cut short": (
        lambda good, tmp: _write(tmp / "b", good.read_bytes()[: good.stat().st_size // 2]),
        "is damaged or not a modelplane backup",
    ),
    "no manifest": (
        lambda good, tmp: _tar(tmp / "b", {"state.db": _database(good, tmp)}),
        f"is not a modelplane backup: it has no {MANIFEST}",
    ),
    "a file left out": (
        lambda good, tmp: _tar(
            tmp / "b", {n: d for n, d in _contents(good).items() if n != "admin.key"}
        ),
        "is damaged or cut short: it lacks admin.key, which its modelplane-backup.json lists",
    ),
    "a file changed": (
        lambda good, tmp: _rewritten(good, tmp / "b", {"admin.key": b"another"}, sums=False),
        "admin.key does not match its checksum: the backup is damaged",
    ),
    "a damaged database": (
        lambda good, tmp: _rewritten(good, tmp / "b", {"state.db": _damaged(good, tmp)}),
        "state.db in .* is damaged \\(integrity check: ",
    ),
    "a newer schema": (
        lambda good, tmp: _rewritten(
            good,
            tmp / "b",
            {"state.db": _database(good, tmp, f"PRAGMA user_version = {SCHEMA_VERSION + 1}")},
        ),
        f"schema version {SCHEMA_VERSION + 1}, newer than this modelplane's {SCHEMA_VERSION}",
    ),
    "a database of something else": (
        lambda good, tmp: _rewritten(
            good, tmp / "b", {"state.db": _database(good, tmp, "PRAGMA user_version = 0")}
        ),
        "is not a modelplane state database \\(no schema version\\)",
    ),
    "a newer format": (
        lambda good, tmp: _rewritten(good, tmp / "b", {}, format=2),
        "is a backup of format 2, which this modelplane \\(format 1\\) cannot read",
    ),
    "a file outside": (
        lambda good, tmp: _rewritten(good, tmp / "b", {"../escaped.json": b"{}"}),
        "'../escaped.json' is not a file a modelplane backup holds",
    ),
}


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("broken", BROKEN)
def test_a_broken_or_foreign_backup_is_refused_naming_what_is_wrong(
    tmp_path: Path, broken: str
) -> None:
    _state(tmp_path / "state")
    good = _backup(tmp_path / "state", tmp_path / "good.tar.gz")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    make, message = BROKEN[broken]
    bad = make(good, scratch)
    into = tmp_path / "into" / "staging"
    into.mkdir(parents=True)

    with pytest.raises(StateError, match=message):
        unpack(bad, into)
    assert not (tmp_path / "into" / "escaped.json").exists()
