"""Where a replica's log lives in the state directory, and which logs are a Model's.

One folder, ``<state-dir>/logs/``, one file per replica: ``<namespace>.<replica id>.log``. A
replica id (``iris-r1-3``) names only the revision, and revision names repeat across
namespaces, so the namespace leads the file's name; being a DNS label it holds no dot, and a
file belongs to one namespace beyond doubt. The supervisor writes these files; the control
API's logs route reads a Model's, and only from its own namespace.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

SUFFIX = ".log"


def replica_log(logs: Path, namespace: str, replica_id: str) -> Path:
    return logs / f"{namespace}.{replica_id}{SUFFIX}"


def model_logs(logs: Path, namespace: str, revisions: Iterable[str]) -> list[tuple[str, Path]]:
    """(replica id, file) of every replica of ``revisions`` in ``namespace``, by replica id.

    Matched whole (``<revision>-<number>``), not by prefix: Model ``iris``'s ``iris-r1`` is not
    Model ``iris-r1``'s ``iris-r1-r1``."""
    wanted, prefix = set(revisions), f"{namespace}."
    found = []
    for path in logs.glob(f"*{SUFFIX}"):
        if not path.name.startswith(prefix):
            continue
        replica = path.name.removeprefix(prefix).removesuffix(SUFFIX)
        revision, _, number = replica.rpartition("-")
        if revision in wanted and number.isdigit():
            found.append((replica, path))
    return sorted(found)
