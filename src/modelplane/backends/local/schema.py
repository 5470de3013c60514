"""The embedded platform's state database (``<state-dir>/state.db``): its schema, version by
version, and the migrations that bring an older file up to date.

Every store that keeps rows in the file opens it through ``open_state``: the Models, their
change log, revisions and events (``store.py``), each team's usage (``usage.py``), and the
control API's API keys and quotas (``apiserver/key_store.py``, ``apiserver/quotas.py``). So the
file is migrated once, in one transaction, before anything reads it.

The version is SQLite's ``user_version``: N means the first N migrations have run. 0 is a file
from before versions were kept, whose tables are exactly those of version 1, so the first
migration adopts it as it is (``CREATE ... IF NOT EXISTS``). A file of a newer version than this
code knows is refused, never opened: its tables may mean what this code cannot tell.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from modelplane.errors import StateError

Migration = Callable[[sqlite3.Connection], None]


def _statements(*sql: str) -> Migration:
    def run(db: sqlite3.Connection) -> None:
        for statement in sql:
            db.execute(statement)

    return run


# Version 1: the schema as it stood when versions began to be kept, word for word.
_TABLES_OF_VERSION_1 = _statements(
    """CREATE TABLE IF NOT EXISTS models (
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (namespace, name)
)""",
    """CREATE TABLE IF NOT EXISTS changes (
    resource_version INTEGER PRIMARY KEY,
    type TEXT NOT NULL,
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    body TEXT NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS revisions (
    namespace TEXT NOT NULL,
    model TEXT NOT NULL,
    number INTEGER NOT NULL,
    digest TEXT NOT NULL,
    spec TEXT NOT NULL,
    created TEXT NOT NULL,
    PRIMARY KEY (namespace, model, number)
)""",
    """CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    namespace TEXT NOT NULL,
    object TEXT NOT NULL,
    type TEXT NOT NULL,
    reason TEXT NOT NULL,
    message TEXT NOT NULL,
    time TEXT NOT NULL
)""",
    "CREATE INDEX IF NOT EXISTS events_by_object ON events (namespace, object, id)",
    """CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    grants TEXT NOT NULL,
    created TEXT NOT NULL,
    revoked TEXT
)""",
    "CREATE TABLE IF NOT EXISTS quotas (namespace TEXT PRIMARY KEY, body TEXT NOT NULL)",
)

# Version 2: release milestones, recorded once per revision and kind (``api.releases``).
_RELEASE_MILESTONES = _statements(
    """CREATE TABLE IF NOT EXISTS milestones (
    namespace TEXT NOT NULL,
    model TEXT NOT NULL,
    revision TEXT NOT NULL,
    milestone TEXT NOT NULL,
    at TEXT NOT NULL,
    reason TEXT NOT NULL,
    PRIMARY KEY (namespace, model, revision, milestone)
)"""
)

# Version 3: each team's usage, per namespace, Model, revision and hour (``usage.py``); the hour
# is its first second since the epoch.
_USAGE = _statements(
    """CREATE TABLE IF NOT EXISTS usage (
    namespace TEXT NOT NULL,
    model TEXT NOT NULL,
    revision TEXT NOT NULL,
    hour INTEGER NOT NULL,
    replica_seconds REAL NOT NULL DEFAULT 0,
    cpu_core_seconds REAL NOT NULL DEFAULT 0,
    memory_gib_seconds REAL NOT NULL DEFAULT 0,
    accelerator_seconds REAL NOT NULL DEFAULT 0,
    requests INTEGER NOT NULL DEFAULT 0,
    client_errors INTEGER NOT NULL DEFAULT 0,
    server_errors INTEGER NOT NULL DEFAULT 0,
    prompt_tokens INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (namespace, model, revision, hour)
) WITHOUT ROWID""",  # rows kept in key order: a report scans them without lookups
)

# Version 4: SLO breaches (``api.releases.Incident``), each its own row; at most one open (no
# restored time) per Model, which the store keeps.
_INCIDENTS = _statements(
    """CREATE TABLE IF NOT EXISTS incidents (
    namespace TEXT NOT NULL,
    model TEXT NOT NULL,
    started TEXT NOT NULL,
    revision TEXT NOT NULL,
    restored TEXT,
    reason TEXT NOT NULL,
    PRIMARY KEY (namespace, model, started)
)"""
)


# Version 5: an API key's priority in the gateway's waiting room (``api.priority``); NULL: the
# namespace's. Added only where missing, as version 1 adopts a file's tables as they are.
def _key_priority(db: sqlite3.Connection) -> None:
    columns = {row[1] for row in db.execute("PRAGMA table_info(api_keys)")}
    if "priority" not in columns:
        db.execute("ALTER TABLE api_keys ADD COLUMN priority TEXT")


# In order; the N-th brings a file from version N-1 to N. Append only: never edit one that has
# shipped, since files out there are at its version already.
MIGRATIONS: tuple[Migration, ...] = (
    _TABLES_OF_VERSION_1,
    _RELEASE_MILESTONES,
    _USAGE,
    _INCIDENTS,
    _key_priority,
)
SCHEMA_VERSION = len(MIGRATIONS)


def open_state(path: Path | str) -> sqlite3.Connection:
    """A connection to the state database at ``path`` (made if missing), migrated to
    ``SCHEMA_VERSION``; StateError if it is of a newer schema or not a database at all."""
    db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")  # durable across process crashes
        migrate(db, str(path))
    except sqlite3.DatabaseError as exc:
        db.close()
        raise StateError(f"{path}: not a modelplane state database ({exc})") from exc
    except BaseException:
        db.close()
        raise
    return db


@contextmanager
def read_only(path: Path | str) -> Iterator[sqlite3.Connection]:
    """A connection of its own that only reads ``path``, in one transaction (every read sees
    the same moment), for one report: usable from any thread, so a long read runs beside the
    event loop's connection instead of on it (WAL lets readers and the writer go on together)."""
    uri = f"{Path(path).absolute().as_uri()}?mode=ro"
    db = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    try:
        db.execute("BEGIN")
        yield db
    finally:
        db.close()  # ends the read transaction


def version_of(db: sqlite3.Connection) -> int:
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def migrate(
    db: sqlite3.Connection, where: str, migrations: Sequence[Migration] = MIGRATIONS
) -> int:
    """Run the migrations ``db`` has not had yet, all in one transaction (a failing one leaves
    the file as it was); the version it had. ``where`` names the file in errors."""
    db.execute("BEGIN IMMEDIATE")  # two processes opening one old file: one migrates it
    try:
        found = version_of(db)
        refuse_newer(found, len(migrations), where)
        for migration in migrations[found:]:
            migration(db)
        if found != len(migrations):
            db.execute(f"PRAGMA user_version = {len(migrations):d}")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
    return found


def refuse_newer(found: int, known: int, where: str) -> None:
    if found > known:
        raise StateError(
            f"{where} has schema version {found}, newer than this modelplane's {known}: it was "
            f"written by a newer modelplane; run that one, or restore a backup taken at "
            f"schema version {known} or older"
        )
