"""What a fetch tells: ``modelplane_artifact_*`` metrics (hits, misses, bytes, time, errors by
why) and progress lines in the log, from real fetches against the real S3 store."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from modelplane.api import Source
from modelplane.artifacts import Fetcher, FetchSettings, Transfer, artifact_cache
from modelplane.artifacts.parts import MiB
from modelplane.errors import ArtifactNotFoundError
from modelplane.telemetry.artifact_metrics import ArtifactMetrics
from tests.artifacts.s3server import BUCKET, S3Server
from tests.artifacts.test_s3 import put, use


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    found = registry.get_sample_value(name, labels)
    return 0.0 if found is None else found


def test_hits_misses_bytes_time_and_errors_are_counted_by_source_kind(
    s3: S3Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = os.urandom(3 * MiB + 17)
    digest = put(s3, "metrics/weights.bin", data)
    use(monkeypatch, s3.reader, s3.endpoint)
    registry = CollectorRegistry()
    metrics = ArtifactMetrics(registry)
    settings = FetchSettings(transfer=Transfer(part_size=MiB))
    source = Source(uri=f"s3://{BUCKET}/metrics/weights.bin", sha256=digest)
    caplog.set_level(logging.INFO, logger="modelplane.artifacts")
    with Fetcher(artifact_cache(tmp_path), tmp_path, settings, metrics) as fetcher:
        fetcher.fetch(source)
        fetcher.fetch(source)
        with pytest.raises(ArtifactNotFoundError):
            fetcher.fetch(Source(uri=f"s3://{BUCKET}/metrics/missing.bin", sha256="0" * 64))
    kind = {"source_kind": "s3"}
    assert value(registry, "modelplane_artifact_cache_misses_total", **kind) == 2
    assert value(registry, "modelplane_artifact_cache_hits_total", **kind) == 1
    assert value(registry, "modelplane_artifact_fetched_bytes_total", **kind) == len(data)
    assert value(registry, "modelplane_artifact_fetch_duration_seconds_count", **kind) == 1
    errors = value(registry, "modelplane_artifact_fetch_errors_total", reason="NotFound", **kind)
    assert errors == 1
    said = [r.getMessage() for r in caplog.records]
    assert f"fetching s3://{BUCKET}/metrics/weights.bin" in said
    assert any(m.startswith(f"fetched 3.0Mi of s3://{BUCKET}/metrics/weights.bin") for m in said)
