"""Where a request's priority in the gateway's waiting room is set: per API key (`modelplane
auth keys create --priority`) and per namespace (`modelplane quota set --priority`, or the
quota annotation on a cluster). A bad value is refused naming the good ones, both are shown
where keys and quotas are, and both survive a restart (the key's in a column its own migration
added)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from modelplane.api.priority import Priority
from modelplane.api.quotas import quota_from_annotations
from modelplane.backends.local.schema import MIGRATIONS, SCHEMA_VERSION, open_state
from modelplane.errors import SpecError
from modelplane.security.key_file import FileKeyStore, add_to_file
from modelplane.security.roles import Role
from tests.platform.conftest import Platform
from tests.platform.test_auth import admin, secured

__all__ = ["admin", "secured"]  # the fixtures: a platform under --auth, and its admin key


def test_priorities_are_set_shown_checked_and_kept_across_a_restart(
    secured: Platform, admin: str
) -> None:
    made = secured.cli("auth", "keys", "create", "nightly", "--grant", "team-a=viewer",
                       "--priority", "batch", key=admin)  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert "viewer in team-a, priority batch" in made.stderr
    wrong = secured.cli("auth", "keys", "create", "rushed", "--grant", "team-a=viewer",
                        "--priority", "urgent", key=admin)  # fmt: skip
    assert wrong.returncode != 0
    assert "priority" in wrong.stderr
    assert "'interactive' or 'batch'" in wrong.stderr

    quota = secured.cli("quota", "set", "team-b", "--priority", "batch", key=admin)
    assert quota.returncode == 0, quota.stderr
    assert "quota of team-b: priority batch" in quota.stdout
    wrong = secured.cli("quota", "set", "team-b", "--priority", "soon", key=admin)
    assert wrong.returncode != 0
    assert "'interactive' or 'batch'" in wrong.stderr

    secured.stop()
    secured.start()
    keys = secured.cli("auth", "keys", "list", key=admin)
    assert keys.returncode == 0, keys.stderr
    (nightly,) = [line for line in keys.stdout.splitlines() if " nightly " in line]
    assert "batch" in nightly.split()
    assert "rushed" not in keys.stdout  # refused, so never made
    quotas = secured.cli("quota", "list", key=admin)
    assert "priority batch" in quotas.stdout  # the refused "soon" changed nothing


def test_a_state_file_of_the_version_before_gains_the_key_priority_column(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state.db"
    old = sqlite3.connect(path)
    for migration in MIGRATIONS[:4]:
        migration(old)
    old.execute(
        "INSERT INTO api_keys (id, name, secret_hash, grants, created) "
        "VALUES ('0123456789ab', 'old', 'x', '{}', '2026-01-01')"
    )
    old.execute("PRAGMA user_version = 4")
    old.commit()
    old.close()
    db = open_state(path)
    try:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert db.execute("SELECT name, priority FROM api_keys").fetchall() == [("old", None)]
    finally:
        db.close()


def test_a_key_file_and_namespace_annotations_carry_a_priority(tmp_path: Path) -> None:
    keys = tmp_path / "keys.json"
    key_id, _ = add_to_file(keys, "nightly", {"team-a": Role.VIEWER}, Priority.BATCH)
    found = FileKeyStore(keys).api_key(key_id)
    assert found is not None
    assert found.priority is Priority.BATCH
    annotated = {"quota.modelplane.io/priority": "batch"}
    quota = quota_from_annotations("team-b", annotated)
    assert quota is not None
    assert quota.priority is Priority.BATCH
    with pytest.raises(SpecError) as refused:
        quota_from_annotations("team-b", {"quota.modelplane.io/priority": "urgent"})
    assert refused.value.problems[0].path == "quota.modelplane.io/priority"
