"""The node cache as a pod's fetch step sees it: ask the node's agent for an artifact by digest
before asking the store, and hand it what came from the store, so the next pod on the node (a
scale-up, a restart, the next revision with the same weights) starts without a download.

The agent is a convenience, never an authority: what it sends is verified against the digest
like anything else, and when it is down or wrong the store is asked as if it were not there.
Immutable references (an OCI digest, a hub commit, an MLflow version) whose content digest is
not pinned are looked up by the reference's own key.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import httpx

from modelplane.api import Source
from modelplane.artifacts.paths import Limits
from modelplane.artifacts.tars import tar_chunks, untar
from modelplane.errors import ArtifactError

log = logging.getLogger("modelplane.artifacts")
TIMEOUT = httpx.Timeout(10.0, read=60.0)


def reference_key(source: Source) -> str:
    """What names an unpinned, immutable source at the node cache."""
    return hashlib.sha256(f"{source.uri} {source.endpoint or ''}".encode()).hexdigest()


class NodeCache:
    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    def get(self, digest: str, target: Path, limits: Limits, uri: str) -> Path | None:
        """The artifact of ``digest`` unpacked under ``target``; None when the agent has it
        not, or cannot be reached."""
        try:
            with httpx.stream("GET", f"{self.url}/v1/artifacts/{digest}", timeout=TIMEOUT) as reply:
                if reply.status_code != httpx.codes.OK:
                    return None
                return untar(reply.iter_bytes(), target, limits, uri)
        except (httpx.HTTPError, ArtifactError, OSError) as exc:
            log.warning("the node cache at %s could not give %s: %s", self.url, uri, exc)
            return None

    def digest(self, source: Source) -> str | None:
        """The digest the agent knows for an immutable ``source``."""
        try:
            reply = httpx.get(f"{self.url}/v1/references/{reference_key(source)}", timeout=TIMEOUT)
        except httpx.HTTPError:
            return None
        found = reply.json().get("digest") if reply.status_code == httpx.codes.OK else None
        return found if isinstance(found, str) else None

    def put(self, digest: str, path: Path, source: Source | None = None) -> None:
        """Hand the agent a verified artifact (and the reference it answers to)."""
        params = {"reference": reference_key(source)} if source is not None else {}
        try:
            held = httpx.head(f"{self.url}/v1/artifacts/{digest}", timeout=TIMEOUT)
            if held.status_code == httpx.codes.OK and source is None:
                return  # another pod of the node handed it over already
            reply = httpx.put(
                f"{self.url}/v1/artifacts/{digest}", content=tar_chunks(path), params=params,
                timeout=TIMEOUT,
            )  # fmt: skip
        except httpx.HTTPError as exc:
            log.warning("the node cache at %s did not take %s: %s", self.url, digest[:16], exc)
            return
        if reply.status_code >= 300:
            log.warning(
                "the node cache at %s refused %s: HTTP %d %s",
                self.url, digest[:16], reply.status_code, reply.text[:200],
            )  # fmt: skip
