"""The state database's schema versions: a file from before versions were kept is adopted as it
is, migrations run in order and all or nothing, and a file of a newer schema is refused."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

from modelplane.api.quotas import QuotaSpec
from modelplane.apiserver.key_store import SqliteKeyStore
from modelplane.apiserver.quotas import SqliteQuotaStore
from modelplane.backends.local.schema import MIGRATIONS, SCHEMA_VERSION, migrate, open_state
from modelplane.backends.local.store import SqliteStore
from modelplane.errors import StateError
from modelplane.security import keys as api_keys
from modelplane.security.roles import Role
from tests.models import onnx_model


def _fill(path: Path) -> str:
    """Models, a revision, an event, an API key and a quota, written by the stores; the key."""
    store, keys, quotas = SqliteStore(path), SqliteKeyStore(path), SqliteQuotaStore(path)
    store.create(onnx_model("iris", "default"))
    store.update(onnx_model("iris", "default", scaling={"maxReplicas": 2}))
    store.add_revision("default", "iris", "digest-1", {"format": "onnx"})
    store.record_event("default", "iris", "Normal", "RevisionCreated", "iris-r1")
    _, token = keys.create("deployer", {"team-a": Role.DEPLOYER})
    quotas.put("team-a", QuotaSpec(requests_per_second=5))
    for opened in (store, keys, quotas):
        opened.close()
    return token


def _contents(path: Path) -> tuple[list[tuple[str, ...]], dict[str, list[tuple[object, ...]]]]:
    """The file's definitions and every row of every table."""
    with sqlite3.connect(path) as db:
        ddl = db.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall()
        tables = [n for t, n, _ in ddl if t == "table"]
        read = "SELECT * FROM {} ORDER BY 1"  # names read from sqlite_master
        rows = {t: db.execute(read.format(t)).fetchall() for t in tables}
    db.close()
    return ddl, rows


def _set_version(path: Path, version: int) -> None:
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {version}")
    db.close()


def _version(path: Path) -> int:
    db = sqlite3.connect(path)
    found = int(db.execute("PRAGMA user_version").fetchone()[0])
    db.close()
    return found


def test_a_database_from_before_versions_is_adopted_as_it_is(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    token = _fill(path)
    _set_version(path, 0)  # what the stores left before versions were kept: version 1's tables
    db = sqlite3.connect(path)
    db.execute("DROP TABLE milestones")  # of version 2
    db.execute("DROP TABLE usage")  # of version 3
    db.execute("DROP TABLE incidents")  # of version 4
    db.execute("ALTER TABLE api_keys DROP COLUMN priority")  # of version 5
    db.close()
    ddl, rows = _contents(path)

    store, keys, quotas = SqliteStore(path), SqliteKeyStore(path), SqliteQuotaStore(path)

    assert _version(path) == SCHEMA_VERSION == 5
    ddl_after, rows_after = _contents(path)
    later = ("milestones", "usage", "incidents")  # the tables of versions 2 to 4, with indexes
    kept = [d for d in ddl_after if not any(t in d[1] for t in later)]
    # Version 5 adds a column to the keys' table: its rows gain it empty, nothing else moves.
    assert [d for d in kept if d[1] != "api_keys"] == [d for d in ddl if d[1] != "api_keys"]
    assert rows_after.pop("api_keys") == [(*row, None) for row in rows.pop("api_keys")]
    assert rows_after == {**rows, "milestones": [], "usage": [], "incidents": []}
    model = store.get("default", "iris")
    assert (model.metadata.generation, model.spec.scaling.max_replicas) == (2, 2)
    assert [r.name for r in store.revisions("default", "iris")] == ["iris-r1"]
    assert [e.reason for e in store.events("default", "iris")] == ["RevisionCreated"]
    parsed = api_keys.parse(token)
    assert parsed is not None
    stored = keys.api_key(parsed[0])
    assert stored is not None
    assert stored.grants == {"team-a": Role.DEPLOYER}
    assert api_keys.matches(parsed[1], stored.secret_hash)
    assert quotas.all()["team-a"].requests_per_second == 5


def test_a_database_of_a_newer_schema_is_refused_and_left_as_it_is(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    _fill(path)
    _set_version(path, SCHEMA_VERSION + 1)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    newer = f"schema version {SCHEMA_VERSION + 1}, newer than this modelplane's {SCHEMA_VERSION}"
    for opener in (SqliteStore, SqliteKeyStore, SqliteQuotaStore):
        with pytest.raises(StateError, match=newer):
            opener(path)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest


def test_a_later_migration_upgrades_a_file_keeping_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    _fill(path)
    by_reason = "CREATE INDEX events_by_reason ON events (namespace, reason)"

    def index_events_by_reason(db: sqlite3.Connection) -> None:
        db.execute(by_reason)

    upgraded = (*MIGRATIONS, index_events_by_reason)
    _, rows = _contents(path)

    db = open_state(path)
    assert migrate(db, str(path), upgraded) == SCHEMA_VERSION
    assert migrate(db, str(path), upgraded) == SCHEMA_VERSION + 1  # once only
    db.close()

    ddl, after = _contents(path)
    assert _version(path) == SCHEMA_VERSION + 1
    assert ("index", "events_by_reason", by_reason) in ddl
    assert after == rows
    newer = f"schema version {SCHEMA_VERSION + 1}, newer than this modelplane's {SCHEMA_VERSION}"
    with pytest.raises(StateError, match=newer):
        SqliteStore(path)


def test_a_failing_migration_leaves_the_file_at_its_version(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    _fill(path)
    before = _contents(path)

    def half_done(db: sqlite3.Connection) -> None:
        db.execute("CREATE TABLE extra (id INTEGER)")
        db.execute("INSERT INTO no_such_table VALUES (1)")

    db = open_state(path)
    with pytest.raises(sqlite3.OperationalError, match="no_such_table"):
        migrate(db, str(path), (*MIGRATIONS, half_done))
    db.close()
    assert _version(path) == SCHEMA_VERSION
    assert _contents(path) == before


def test_a_file_that_is_no_database_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    path.write_bytes(b"not sqlite at all, " * 100)
    with pytest.raises(StateError, match=f"{path}: not a modelplane state database"):
        SqliteStore(path)
