"""The embedded control plane's store: Models, their revisions and events in one SQLite file.

Kubernetes semantics, so one client serves both modes: a global ``resourceVersion`` that every
write bumps (optimistic concurrency: a write carrying a stale one is a conflict), ``generation``
bumped by spec changes only, and a change log that watches resume from. Every write is one
transaction in WAL mode, so killing the process at any moment leaves either the old object or the
new one, never half of either. The tables and their versions are ``schema.py``'s.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from modelplane.api import Model, revision_name, to_wire
from modelplane.api.releases import Incident, Mark, Milestone, RevisionHistory
from modelplane.api.store import Change, ChangeType, Event, EventType, Revision
from modelplane.backends.local.schema import open_state, read_only
from modelplane.errors import AlreadyExistsError, ConflictError, GoneError, NotFoundError

RETAINED_CHANGES = 10_000


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


class SqliteStore:
    """Synchronous and fast (sub-millisecond writes); callers on an event loop call it directly,
    except for ``release_history``, a report that reads everything: it has a connection of its
    own and is called from a thread."""

    def __init__(self, path: Path | str) -> None:
        self._db = open_state(path)  # StateError if it is of a newer schema
        self._path = path
        self._listeners: list[Callable[[], None]] = []

    def close(self) -> None:
        self._db.close()

    def on_change(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` after every committed write (watches wake on it)."""
        self._listeners.append(listener)

    @contextmanager
    def _transaction(
        self, *, write: bool = True, dry_run: bool = False
    ) -> Iterator[sqlite3.Connection]:
        """One transaction; a dry run does all the checks and writes, then rolls them back."""
        self._db.execute("BEGIN IMMEDIATE" if write else "BEGIN DEFERRED")
        before = self._db.total_changes
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        if dry_run:
            self._db.execute("ROLLBACK")
            return
        self._db.execute("COMMIT")
        if self._db.total_changes != before:  # listeners hear of writes, not of reads or no-ops
            for listener in self._listeners:
                listener()

    # -- Models ------------------------------------------------------------------------------

    def resource_version(self) -> int:
        row = self._db.execute("SELECT MAX(resource_version) FROM changes").fetchone()
        return int(row[0] or 0)

    def get(self, namespace: str, name: str) -> Model:
        row = self._db.execute(
            "SELECT body FROM models WHERE namespace = ? AND name = ?", (namespace, name)
        ).fetchone()
        if row is None:
            raise NotFoundError(f'models "{name}" not found in namespace "{namespace}"')
        return Model.model_validate_json(row[0])

    def list_models(self, namespace: str | None = None) -> tuple[list[Model], int]:
        """Models (in one namespace, or all) and the resourceVersion they were read at."""
        with self._transaction(write=False) as db:
            if namespace is None:
                rows = db.execute("SELECT body FROM models ORDER BY namespace, name").fetchall()
            else:
                rows = db.execute(
                    "SELECT body FROM models WHERE namespace = ? ORDER BY name", (namespace,)
                ).fetchall()
            version = self.resource_version()
        return [Model.model_validate_json(r[0]) for r in rows], version

    def create(self, model: Model, *, dry_run: bool = False) -> Model:
        meta = model.metadata
        with self._transaction(dry_run=dry_run) as db:
            exists = db.execute(
                "SELECT 1 FROM models WHERE namespace = ? AND name = ?", (meta.namespace, meta.name)
            ).fetchone()
            if exists:
                raise AlreadyExistsError(
                    f'models "{meta.name}" already exists in namespace "{meta.namespace}"'
                )
            stored = model.model_copy(deep=True)
            stored.metadata.uid = str(uuid.uuid4())
            stored.metadata.generation = 1
            stored.metadata.creation_timestamp = _now()
            written = self._write(db, "ADDED", stored)
            if dry_run:  # as Kubernetes answers a dry run: no version was written
                written.metadata.resource_version = None
            return written

    def update(
        self, model: Model, *, subresource: Literal["", "status"] = "", dry_run: bool = False
    ) -> Model:
        """Replace spec, labels and annotations (or only status, for the status subresource).

        A ``metadata.resourceVersion`` on ``model`` must match the stored one (else
        ConflictError); without one the write is unconditional, as with ``kubectl apply``.
        """
        meta = model.metadata
        with self._transaction(dry_run=dry_run) as db:
            current = self._read(db, meta.namespace, meta.name)
            wanted = meta.resource_version
            if wanted is not None and wanted != current.metadata.resource_version:
                raise ConflictError(
                    f'Operation cannot be fulfilled on models "{meta.name}": the object has been '
                    f"modified (resourceVersion {wanted} is stale, current is "
                    f"{current.metadata.resource_version}); read it again and retry"
                )
            stored = current.model_copy(deep=True)
            if subresource == "status":
                stored.status = model.status.model_copy(deep=True)
            else:
                if model.spec != current.spec:
                    stored.metadata.generation = (current.metadata.generation or 0) + 1
                stored.spec = model.spec.model_copy(deep=True)
                stored.metadata.labels = dict(meta.labels)
                stored.metadata.annotations = dict(meta.annotations)
            if to_wire(stored) == to_wire(current):
                return current  # no-op writes do not bump resourceVersion or wake watchers
            written = self._write(db, "MODIFIED", stored)
            if dry_run:  # the version a real write of it must name
                written.metadata.resource_version = current.metadata.resource_version
            return written

    def delete(self, namespace: str, name: str, *, dry_run: bool = False) -> Model:
        with self._transaction(dry_run=dry_run) as db:
            current = self._read(db, namespace, name)
            if dry_run:
                return current
            db.execute("DELETE FROM models WHERE namespace = ? AND name = ?", (namespace, name))
            db.execute("DELETE FROM revisions WHERE namespace = ? AND model = ?", (namespace, name))
            for forget in (
                "DELETE FROM milestones WHERE namespace = ? AND model = ?",
                "DELETE FROM incidents WHERE namespace = ? AND model = ?",
            ):
                db.execute(forget, (namespace, name))
            version = self._next_version(db)
            current.metadata.resource_version = str(version)
            self._log(db, version, "DELETED", current)
            return current

    def changes_since(self, resource_version: int) -> list[Change]:
        """Every change after ``resource_version``; GoneError if that history was compacted."""
        oldest = self._db.execute("SELECT MIN(resource_version) FROM changes").fetchone()[0]
        if oldest is not None and resource_version < oldest - 1:
            raise GoneError(
                f"resourceVersion {resource_version} is too old (oldest kept is {oldest}); "
                f"list again and watch from the list's resourceVersion"
            )
        rows = self._db.execute(
            "SELECT resource_version, type, body FROM changes WHERE resource_version > ? "
            "ORDER BY resource_version",
            (resource_version,),
        ).fetchall()
        return [Change(int(v), t, Model.model_validate_json(b)) for v, t, b in rows]

    def _read(self, db: sqlite3.Connection, namespace: str, name: str) -> Model:
        row = db.execute(
            "SELECT body FROM models WHERE namespace = ? AND name = ?", (namespace, name)
        ).fetchone()
        if row is None:
            raise NotFoundError(f'models "{name}" not found in namespace "{namespace}"')
        return Model.model_validate_json(row[0])

    def _next_version(self, db: sqlite3.Connection) -> int:
        row = db.execute("SELECT MAX(resource_version) FROM changes").fetchone()
        return int(row[0] or 0) + 1

    def _write(self, db: sqlite3.Connection, change: ChangeType, model: Model) -> Model:
        version = self._next_version(db)
        model.metadata.resource_version = str(version)
        body = model.model_dump_json(by_alias=True, exclude_none=True)
        db.execute(
            "INSERT OR REPLACE INTO models (namespace, name, body) VALUES (?, ?, ?)",
            (model.metadata.namespace, model.metadata.name, body),
        )
        self._log(db, version, change, model)
        return model

    def _log(self, db: sqlite3.Connection, version: int, change: ChangeType, model: Model) -> None:
        body = model.model_dump_json(by_alias=True, exclude_none=True)
        db.execute(
            "INSERT INTO changes (resource_version, type, namespace, name, body) "
            "VALUES (?, ?, ?, ?, ?)",
            (version, change, model.metadata.namespace, model.metadata.name, body),
        )
        db.execute("DELETE FROM changes WHERE resource_version <= ?", (version - RETAINED_CHANGES,))

    # -- Revisions ---------------------------------------------------------------------------

    def revisions(self, namespace: str, model: str) -> list[Revision]:
        rows = self._db.execute(
            "SELECT number, digest, spec, created FROM revisions "
            "WHERE namespace = ? AND model = ? ORDER BY number",
            (namespace, model),
        ).fetchall()
        return [
            Revision(namespace, model, int(n), d, json.loads(s), datetime.fromisoformat(c))
            for n, d, s, c in rows
        ]

    def add_revision(
        self, namespace: str, model: str, digest: str, spec: dict[str, Any]
    ) -> Revision:
        """Record a new immutable revision numbered after the model's last one."""
        with self._transaction() as db:
            row = db.execute(
                "SELECT MAX(number) FROM revisions WHERE namespace = ? AND model = ?",
                (namespace, model),
            ).fetchone()
            revision = Revision(namespace, model, int(row[0] or 0) + 1, digest, spec, _now())
            db.execute(
                "INSERT INTO revisions (namespace, model, number, digest, spec, created) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (namespace, model, revision.number, digest, json.dumps(spec),
                 revision.created.isoformat()),
            )  # fmt: skip
            return revision

    # -- Release milestones ----------------------------------------------------------------

    def record_marks(self, namespace: str, model: str, marks: Sequence[Mark]) -> None:
        """Record milestones; the first of each kind per revision wins (a pass repeated after a
        crash records the same ones again and changes nothing)."""
        if not marks:
            return
        with self._transaction() as db:
            db.executemany(
                "INSERT OR IGNORE INTO milestones "
                "(namespace, model, revision, milestone, at, reason) VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (namespace, model, m.revision, m.milestone.value, m.at.isoformat(), m.reason)
                    for m in marks
                ],
            )

    def record_incidents(self, namespace: str, model: str, incidents: Sequence[Incident]) -> None:
        if not incidents:
            return
        with self._transaction() as db:
            for incident in incidents:
                if incident.restored is not None:
                    db.execute(
                        "UPDATE incidents SET restored = ? "
                        "WHERE namespace = ? AND model = ? AND restored IS NULL",
                        (incident.restored.isoformat(), namespace, model),
                    )
                    continue
                db.execute(
                    "INSERT OR IGNORE INTO incidents "
                    "(namespace, model, started, revision, restored, reason) "
                    "SELECT ?, ?, ?, ?, NULL, ? WHERE NOT EXISTS (SELECT 1 FROM incidents "
                    "WHERE namespace = ? AND model = ? AND restored IS NULL)",
                    (namespace, model, incident.started.isoformat(), incident.revision,
                     incident.reason, namespace, model),
                )  # fmt: skip

    def release_history(self, namespace: str | None = None) -> list[RevisionHistory]:
        args = (namespace, namespace)
        with read_only(self._path) as db:
            revisions = db.execute(
                "SELECT namespace, model, number, digest, created FROM revisions "
                "WHERE ? IS NULL OR namespace = ?",
                args,
            ).fetchall()
            rows = db.execute(
                "SELECT namespace, model, revision, milestone, at, reason FROM milestones "
                "WHERE ? IS NULL OR namespace = ?",
                args,
            ).fetchall()
            breaches = db.execute(
                "SELECT namespace, model, revision, started, restored, reason FROM incidents "
                "WHERE ? IS NULL OR namespace = ? ORDER BY started",
                args,
            ).fetchall()
        marks: dict[tuple[str, str, str], list[Mark]] = {}
        for ns, model, revision, milestone, at, reason in rows:
            mark = Mark(revision, Milestone(milestone), datetime.fromisoformat(at), reason)
            marks.setdefault((ns, model, revision), []).append(mark)
        held: dict[tuple[str, str, str], list[Incident]] = {}
        for ns, model, revision, started, restored, reason in breaches:
            ended = datetime.fromisoformat(restored) if restored is not None else None
            incident = Incident(ns, model, revision, datetime.fromisoformat(started), ended, reason)
            held.setdefault((ns, model, revision), []).append(incident)
        found = []
        for ns, model, number, digest, created in revisions:
            name = revision_name(model, int(number))
            owned = tuple(marks.get((ns, model, name), ()))
            born = datetime.fromisoformat(created)
            during = tuple(held.get((ns, model, name), ()))
            found.append(RevisionHistory(ns, model, name, int(number), digest, born, owned, during))
        return found

    # -- Events ------------------------------------------------------------------------------

    def record_event(
        self,
        namespace: str,
        obj: str,
        kind: EventType,
        reason: str,
        message: str,
    ) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO events (namespace, object, type, reason, message, time) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (namespace, obj, kind, reason, message, _now().isoformat()),
            )

    def events(self, namespace: str, obj: str, limit: int = 20) -> list[Event]:
        rows = self._db.execute(
            "SELECT type, reason, message, time FROM events WHERE namespace = ? AND object = ? "
            "ORDER BY id DESC LIMIT ?",
            (namespace, obj, limit),
        ).fetchall()
        return [
            Event(namespace, obj, t, r, m, datetime.fromisoformat(w))
            for t, r, m, w in reversed(rows)
        ]
