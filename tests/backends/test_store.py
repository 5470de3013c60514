"""The SQLite store: Kubernetes semantics and crash safety, on a real database file."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from modelplane.api import Model
from modelplane.api.releases import Incident
from modelplane.backends.local.store import SqliteStore
from modelplane.errors import AlreadyExistsError, ConflictError, GoneError, NotFoundError
from tests.models import onnx_model

T0 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


def make(name: str = "iris", namespace: str = "default", max_replicas: int = 4) -> Model:
    return onnx_model(name, namespace, scaling={"maxReplicas": max_replicas})


@pytest.fixture
def store(tmp_path: Path) -> SqliteStore:
    return SqliteStore(tmp_path / "state.db")


def test_create_assigns_identity_and_versions(store: SqliteStore) -> None:
    created = store.create(make())
    assert created.metadata.uid
    assert created.metadata.generation == 1
    assert created.metadata.resource_version == "1"
    assert store.get("default", "iris") == created
    with pytest.raises(AlreadyExistsError, match='models "iris" already exists'):
        store.create(make())


def test_generation_bumps_on_spec_changes_only(store: SqliteStore) -> None:
    created = store.create(make())
    changed = make(max_replicas=8)
    updated = store.update(changed)
    assert updated.metadata.generation == 2
    status_only = updated.model_copy(deep=True)
    status_only.status.url = "http://127.0.0.1:8080/v2/models/iris"
    after_status = store.update(status_only, subresource="status")
    assert after_status.metadata.generation == 2
    assert after_status.status.url == status_only.status.url
    assert int(after_status.metadata.resource_version or 0) > int(
        created.metadata.resource_version or 0
    )


def test_status_writes_never_touch_spec_and_spec_writes_never_touch_status(
    store: SqliteStore,
) -> None:
    store.create(make())
    with_status = store.get("default", "iris")
    with_status.status.url = "http://x"
    with_status.spec.scaling.max_replicas = 9
    store.update(with_status, subresource="status")
    stored = store.get("default", "iris")
    assert stored.spec.scaling.max_replicas == 4
    assert stored.status.url == "http://x"
    spec_change = make(max_replicas=2)
    store.update(spec_change)
    assert store.get("default", "iris").status.url == "http://x"


def test_stale_resource_version_is_a_conflict(store: SqliteStore) -> None:
    created = store.create(make())
    store.update(make(max_replicas=5))
    stale = make(max_replicas=6)
    stale.metadata.resource_version = created.metadata.resource_version
    with pytest.raises(ConflictError, match="the object has been modified"):
        store.update(stale)
    assert store.get("default", "iris").spec.scaling.max_replicas == 5


def test_no_op_update_keeps_the_resource_version(store: SqliteStore) -> None:
    created = store.create(make())
    assert store.update(make()).metadata.resource_version == created.metadata.resource_version


def test_list_and_delete(store: SqliteStore) -> None:
    store.create(make("a", "team-a"))
    store.create(make("b", "team-b"))
    everything, version = store.list_models()
    assert [m.key for m in everything] == ["team-a/a", "team-b/b"]
    assert version == 2
    assert [m.key for m in store.list_models("team-b")[0]] == ["team-b/b"]
    store.delete("team-a", "a")
    with pytest.raises(NotFoundError):
        store.get("team-a", "a")
    with pytest.raises(NotFoundError):
        store.delete("team-a", "a")


def test_changes_resume_from_a_resource_version(store: SqliteStore) -> None:
    store.create(make("a"))
    store.update(make("a", max_replicas=2))
    store.delete("default", "a")
    changes = store.changes_since(0)
    assert [(c.type, c.resource_version) for c in changes] == [
        ("ADDED", 1),
        ("MODIFIED", 2),
        ("DELETED", 3),
    ]
    assert [c.type for c in store.changes_since(2)] == ["DELETED"]


def test_compacted_history_is_gone(store: SqliteStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("modelplane.backends.local.store.RETAINED_CHANGES", 2)
    for replicas in range(1, 6):
        if replicas == 1:
            store.create(make())
        else:
            store.update(make(max_replicas=replicas))
    with pytest.raises(GoneError, match="too old"):
        store.changes_since(0)


def test_revisions_are_numbered_per_model(store: SqliteStore) -> None:
    first = store.add_revision("default", "iris", "d1", {"format": "onnx"})
    second = store.add_revision("default", "iris", "d2", {"format": "onnx"})
    other = store.add_revision("default", "wine", "d1", {})
    assert (first.name, second.name, other.name) == ("iris-r1", "iris-r2", "wine-r1")
    assert [r.digest for r in store.revisions("default", "iris")] == ["d1", "d2"]


def test_events_are_kept_in_order(store: SqliteStore) -> None:
    store.record_event("default", "iris", "Normal", "RevisionCreated", "iris-r1")
    store.record_event("default", "iris", "Warning", "RevisionFailed", "boom")
    assert [e.reason for e in store.events("default", "iris")] == [
        "RevisionCreated",
        "RevisionFailed",
    ]


def test_killed_writer_leaves_whole_objects(tmp_path: Path) -> None:
    """SIGKILL a process in the middle of a stream of writes: what it committed is whole."""
    db = tmp_path / "state.db"
    script = f"""
import os, signal
from modelplane.backends.local.store import SqliteStore
from tests.backends.test_store import make
store = SqliteStore({str(db)!r})
store.create(make())
for n in range(1, 100000):
    store.update(make(max_replicas=1 + n % 500))
    if n == 300:
        os.kill(os.getpid(), signal.SIGKILL)
"""
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=Path(__file__).parents[2], timeout=60
    )
    assert result.returncode == -9
    reopened = SqliteStore(db)
    model = reopened.get("default", "iris")
    assert model.metadata.generation == 301
    assert model.spec.scaling.max_replicas == 1 + 300 % 500
    assert reopened.changes_since(0)[-1].resource_version == int(
        model.metadata.resource_version or 0
    )


def test_slo_breaches_are_kept_one_open_at_a_time_on_their_revision(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = SqliteStore(path)
    store.create(make())
    for digest in ("a", "b"):
        store.add_revision("default", "iris", digest, {})

    def breach(revision: str, minute: int, restored: int | None = None) -> Incident:
        ended = T0 + timedelta(minutes=restored) if restored is not None else None
        start = T0 + timedelta(minutes=minute)
        return Incident("default", "iris", revision, start, ended, "ErrorBudgetSpent")

    store.record_incidents("default", "iris", [breach("iris-r1", 0)])
    # A pass repeated after a crash starts it again, later: the open one stands.
    store.record_incidents("default", "iris", [breach("iris-r1", 1)])
    store.record_incidents("default", "iris", [breach("", 0, restored=30)])
    store.record_incidents("default", "iris", [breach("", 1, restored=31)])  # closed already
    store.record_incidents("default", "iris", [breach("iris-r2", 60)])

    reopened = SqliteStore(path)  # what a restart reads
    history = {r.name: r.incidents for r in reopened.release_history("default")}
    assert history == {"iris-r1": (breach("iris-r1", 0, restored=30),),
                       "iris-r2": (breach("iris-r2", 60),)}  # fmt: skip
    reopened.delete("default", "iris")
    assert reopened.release_history() == []
    store.create(make())  # the same name again starts with no incidents of the old one
    store.add_revision("default", "iris", "a", {})
    assert [r.incidents for r in store.release_history()] == [()]
