"""Where Prometheus finds the embedded platform: a file of scrape targets (Prometheus's file-based
service discovery) that follows replicas as they come and go.

One group for the gateway and one per ready replica, labelled with its namespace, model,
revision and replica, so runtime series can be told apart without the runtime knowing more
than its model's name. Written whole and renamed into place, so Prometheus never reads half a
file, and only when it changes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

Target = dict[str, Any]


def targets(gateway: str, replicas: list[tuple[str, str, str, str]]) -> list[Target]:
    """``gateway``: host:port; ``replicas``: (model key, revision, replica id, host:port)."""
    found: list[Target] = [{"targets": [gateway], "labels": {"job": "modelplane-gateway"}}]
    for key, revision, replica, address in sorted(replicas):
        namespace, _, name = key.partition("/")
        found.append(
            {
                "targets": [address],
                "labels": {
                    "job": "modelplane-runtime",
                    "namespace": namespace,
                    "modelplane_model": name,
                    "revision": revision,
                    "replica": replica,
                },
            }
        )
    return found


class TargetsFile:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._written: list[Target] | None = None

    def update(self, found: list[Target]) -> None:
        if found == self._written:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".tmp")
        partial.write_text(json.dumps(found, indent=1))
        os.replace(partial, self.path)
        self._written = found
