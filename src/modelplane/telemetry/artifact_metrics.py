"""Prometheus metrics of artifact delivery, in the registry of the process that fetches (a
replica's ``/metrics`` in embedded mode)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from modelplane.telemetry import names


class ArtifactMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        kind = [names.LABEL_SOURCE_KIND]
        self.fetched_bytes = Counter(
            names.ARTIFACT_FETCHED_BYTES,
            "Bytes of artifacts fetched from their stores (a cache hit fetches none).",
            kind,
            registry=registry,
        )
        self.hits = Counter(
            names.ARTIFACT_CACHE_HITS,
            "Pinned artifacts found in the cache, fetched by no one.",
            kind,
            registry=registry,
        )
        self.misses = Counter(
            names.ARTIFACT_CACHE_MISSES,
            "Artifacts fetched from their stores (unpinned ones always are).",
            kind,
            registry=registry,
        )
        self.duration = Histogram(
            names.ARTIFACT_FETCH_DURATION,
            "Time to fetch and verify an artifact that was not in the cache.",
            kind,
            buckets=names.FETCH_BUCKETS,
            registry=registry,
        )
        self.errors = Counter(
            names.ARTIFACT_FETCH_ERRORS,
            "Fetches that failed, by why (NotFound, AccessDenied, Unreachable, DigestMismatch).",
            [names.LABEL_SOURCE_KIND, names.LABEL_REASON],
            registry=registry,
        )
