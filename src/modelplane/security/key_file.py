"""API keys in a file, for a gateway with no database of its own (on a cluster: a Secret mounted
in its pods). The file is a JSON list of ``{"id", "name", "secretHash", "grants", "revoked"}``
(and ``"priority"`` where the key sets one), written by ``modelplane auth keys create
--to-file``; never a key itself. It is read again when it changes (a Secret's update reaches
the pods within a minute or so), at most every few seconds."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from modelplane.api.priority import Priority
from modelplane.security import keys
from modelplane.security.authn import StoredKey
from modelplane.security.roles import Role

log = logging.getLogger(__name__)

CHECK_EVERY_SECONDS = 2.0


class FileKeyStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._keys: dict[str, StoredKey] = {}
        self._seen: tuple[int, int, int] | None = None
        self._checked = float("-inf")
        self._load()  # a broken file at start is an error, not an empty store

    def api_key(self, key_id: str) -> StoredKey | None:
        now = time.monotonic()
        if now - self._checked >= CHECK_EVERY_SECONDS:
            self._checked = now
            try:
                self._load()
            except (OSError, ValueError) as exc:  # keep the keys read last
                log.error("API keys in %s unreadable, keeping the last ones: %s", self.path, exc)
        return self._keys.get(key_id)

    def _load(self) -> None:
        # stat() follows symlinks: a Secret volume's update swaps its ``..data`` link to a new
        # directory, so the path now names another file, told apart by its inode even where
        # its time and size are the same.
        stat = self.path.stat()
        seen = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        if seen == self._seen:
            return
        self._keys = {k.id: k for k in map(_stored, json.loads(self.path.read_text()))}
        self._seen = seen


def _stored(item: dict[str, Any]) -> StoredKey:
    grants = {ns: Role.named(role) for ns, role in item["grants"].items()}
    priority = item.get("priority")
    return StoredKey(
        item["id"], item["name"], item["secretHash"], grants, bool(item["revoked"]),
        Priority.named(priority) if priority is not None else None,
    )  # fmt: skip


def add_to_file(
    path: Path, name: str, grants: dict[str, Role], priority: Priority | None = None
) -> tuple[str, str]:
    """Add a new key to ``path`` (made if missing): its id, and the key itself (shown once)."""
    items = json.loads(path.read_text()) if path.exists() else []
    issued = keys.issue()
    labels = {ns: role.label for ns, role in grants.items()}
    item = {"id": issued.id, "name": name, "secretHash": issued.secret_hash,
            "grants": labels, "revoked": False}  # fmt: skip
    if priority is not None:
        item["priority"] = priority.value
    items.append(item)
    _write(path, items)
    return issued.id, issued.token


def revoke_in_file(path: Path, key_id: str) -> bool:
    items = json.loads(path.read_text())
    found = [item for item in items if item["id"] == key_id]
    for item in found:
        item["revoked"] = True
    _write(path, items)
    return bool(found)


def _write(path: Path, items: list[dict[str, Any]]) -> None:
    partial = path.with_suffix(path.suffix + ".tmp")
    partial.write_text(json.dumps(items, indent=1) + "\n")
    os.replace(partial, path)
