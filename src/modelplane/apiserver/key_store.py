"""API keys of the embedded platform, in its SQLite state beside the Models: a key's id, name,
grants and the hash of its secret (never the secret itself), and when it was revoked."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from modelplane.api.priority import Priority
from modelplane.backends.local.schema import open_state
from modelplane.errors import NotFoundError
from modelplane.security import keys
from modelplane.security.authn import StoredKey
from modelplane.security.roles import ALL_NAMESPACES, Role


@dataclass(frozen=True)
class KeyInfo:
    """What may be shown of a key: everything but its secret."""

    id: str
    name: str
    grants: dict[str, Role]
    created: str
    revoked: str | None
    priority: Priority | None = None  # None: the namespace's

    def wire(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "grants": {ns: role.label for ns, role in self.grants.items()},
            "created": self.created,
            "revoked": self.revoked,
            "priority": self.priority.value if self.priority is not None else None,
        }


def _now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat()


class SqliteKeyStore:
    def __init__(self, path: Path | str) -> None:
        self._db = open_state(path)

    def close(self) -> None:
        self._db.close()

    def create(
        self, name: str, grants: dict[str, Role], priority: Priority | None = None
    ) -> tuple[KeyInfo, str]:
        """A new key: what may be shown of it, and the key itself (shown once, never stored)."""
        issued = keys.issue()
        created = _now()
        self._db.execute(
            "INSERT INTO api_keys (id, name, secret_hash, grants, created, priority) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (issued.id, name, issued.secret_hash, _dump(grants), created, _label(priority)),
        )
        return KeyInfo(issued.id, name, dict(grants), created, None, priority), issued.token

    def revoke(self, key_id: str) -> KeyInfo:
        self._db.execute(
            "UPDATE api_keys SET revoked = ? WHERE id = ? AND revoked IS NULL", (_now(), key_id)
        )
        found = [k for k in self.list() if k.id == key_id]
        if not found:
            raise NotFoundError(f"API key {key_id!r} not found")
        return found[0]

    def list(self) -> list[KeyInfo]:
        rows = self._db.execute(
            "SELECT id, name, grants, created, revoked, priority FROM api_keys ORDER BY created, id"
        ).fetchall()
        return [KeyInfo(i, n, _load(g), c, r, _priority(p)) for i, n, g, c, r, p in rows]

    def api_key(self, key_id: str) -> StoredKey | None:
        row = self._db.execute(
            "SELECT name, secret_hash, grants, revoked, priority FROM api_keys WHERE id = ?",
            (key_id,),
        ).fetchone()
        if row is None:
            return None
        name, secret_hash, grants, revoked, priority = row
        stored = StoredKey(key_id, name, secret_hash, _load(grants), revoked is not None)
        return replace(stored, priority=_priority(priority))


def _dump(grants: dict[str, Role]) -> str:
    return json.dumps({ns: role.label for ns, role in grants.items()}, sort_keys=True)


def _load(text: str) -> dict[str, Role]:
    return {ns: Role.named(role) for ns, role in json.loads(text).items()}


def _label(priority: Priority | None) -> str | None:
    return priority.value if priority is not None else None


def _priority(label: str | None) -> Priority | None:
    return Priority.named(label) if label is not None else None


def first_admin_key(store: SqliteKeyStore, path: Path) -> bool:
    """With no key at all yet, create an admin key of every namespace and write it to ``path``
    (readable by its owner only): the key that creates the others. Whether one was made."""
    if store.list():
        return False
    _, token = store.create("admin", {ALL_NAMESPACES: Role.ADMIN})
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".tmp")
    partial.unlink(missing_ok=True)
    partial.touch(mode=0o600)
    partial.write_text(token + "\n")
    os.replace(partial, path)
    return True
