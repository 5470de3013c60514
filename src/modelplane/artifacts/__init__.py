"""Model artifacts: fetched from where a Model's ``source`` points, verified against its pinned
digest, kept in a content-addressed cache shared by every replica on the machine.

``sources`` is the entry point (:class:`Fetcher`); ``files``, ``http``, ``s3`` and ``hub`` (with
``snapshots``) are the source kinds; ``parts`` fetches large objects in resumable parallel
ranges; ``digests`` defines the file and directory digests; ``paths`` what an artifact may
contain; ``cache`` the cache itself. The runtime uses it to load a model; the CLI to list and
prune the cache.
"""

from modelplane.artifacts.cache import Cache, Entry
from modelplane.artifacts.digests import digest_of, file_sha256, manifest_digest, manifest_text
from modelplane.artifacts.parts import Transfer
from modelplane.artifacts.paths import Limits
from modelplane.artifacts.sizes import format_size, parse_size
from modelplane.artifacts.sources import (
    Fetched,
    Fetcher,
    FetchSettings,
    artifact_cache,
    default_cache_dir,
)

__all__ = [
    "Cache",
    "Entry",
    "FetchSettings",
    "Fetched",
    "Fetcher",
    "Limits",
    "Transfer",
    "artifact_cache",
    "default_cache_dir",
    "digest_of",
    "file_sha256",
    "format_size",
    "manifest_digest",
    "manifest_text",
    "parse_size",
]
