"""Putting a checked backup (``backup.unpack``) in place of a state directory's state, for
``modelplane restore``. The caller holds the directory's ``StateLock``: no platform runs on it,
so the files can be swapped without a running controller noticing half of it; the next
``modelplane up`` reads the restored state as it reads any state it finds.

What the restore replaces is moved aside, not deleted, into ``<state-dir>/replaced-<time>/``:
the database (with its ``-wal`` and ``-shm``, which belong to it), ``gitops/`` (sources, their
status and mirrors), ``admin.key``, and the revision manifests, which would otherwise be served
again under revision names the restored state may give to other specs.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

from modelplane.backends.local.backup import DATABASE, Backup

_REPLACED = (DATABASE, f"{DATABASE}-wal", f"{DATABASE}-shm", "gitops", "admin.key", "revisions")


def restore(backup: Backup, state_dir: Path) -> Path | None:
    """Replace the state in ``state_dir`` with ``backup``'s; where what it replaced went (None:
    there was nothing)."""
    aside = _move_aside(state_dir)
    for path in sorted(backup.directory.rglob("*")):
        if path.is_file():
            target = state_dir / path.relative_to(backup.directory)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, target)
    return aside


def _move_aside(state_dir: Path) -> Path | None:
    present = [name for name in _REPLACED if (state_dir / name).exists()]
    if not present:
        return None
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    aside = state_dir / f"replaced-{stamp}"
    aside.mkdir()
    for name in present:
        os.replace(state_dir / name, aside / name)
    return aside
