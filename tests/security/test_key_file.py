"""API keys from a file, as the cluster gateway reads them from a mounted Secret. Kubernetes
updates a Secret volume by writing a new directory and swapping the volume's ``..data`` symlink
to it; the store notices within seconds, even when the new file has the old one's time and
size."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from modelplane.errors import UnauthenticatedError
from modelplane.security.authn import Authenticator
from modelplane.security.key_file import FileKeyStore, add_to_file
from modelplane.security.roles import Role


def _publish(volume: Path, version: str, items: list[dict[str, Any]]) -> Path:
    """Lay out ``keys.json`` as the kubelet does: ``keys.json -> ..data/keys.json``, and
    ``..data`` swapped atomically to the new version's directory."""
    written = volume / f"..{version}"
    written.mkdir(parents=True)
    (written / "keys.json").write_text(json.dumps(items, indent=1) + "\n")
    (volume / "..data_tmp").symlink_to(written.name)
    os.replace(volume / "..data_tmp", volume / "..data")
    if not (volume / "keys.json").is_symlink():
        (volume / "keys.json").symlink_to("..data/keys.json")
    return written / "keys.json"


def _refusal(auth: Authenticator, token: str) -> str | None:
    try:
        auth.principal(f"Bearer {token}")
    except UnauthenticatedError as exc:
        return str(exc)
    return None


def test_a_secret_volume_update_is_read_again(tmp_path: Path) -> None:
    staging = tmp_path / "keys.json"
    key_id, token = add_to_file(staging, "team-a", {"team-a": Role.DEPLOYER})
    items = json.loads(staging.read_text())
    volume = tmp_path / "volume"
    first = _publish(volume, "2026_01_01_v1", items)
    auth = Authenticator(FileKeyStore(volume / "keys.json"))
    assert _refusal(auth, token) is None

    # Revoked, and renamed so that the file keeps its size ("false" -> "true" is one shorter).
    second = _publish(volume, "2026_01_01_v2", [{**items[0], "name": "team-a1", "revoked": True}])
    stat = first.stat()
    os.utime(second, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert (second.stat().st_size, second.stat().st_mtime_ns) == (stat.st_size, stat.st_mtime_ns)
    deadline = time.monotonic() + 10
    while (refused := _refusal(auth, token)) is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert refused == f"the API key {key_id} has been revoked"
