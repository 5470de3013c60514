"""Prometheus metrics mirrored over OTLP: the same series, pushed as OpenTelemetry metrics.

Every component keeps its metrics in a prometheus_client registry (what ``/metrics`` serves).
When the environment asks for OTLP metrics (``OTEL_METRICS_EXPORTER=otlp``, or an OTLP endpoint
with ``OTEL_METRICS_EXPORTER`` unset), ``start`` runs a thread that every
``OTEL_METRIC_EXPORT_INTERVAL`` milliseconds (60 s by default) reads those registries and
exports them: counters as cumulative monotonic sums, gauges as gauges, histograms as explicit-
bucket histograms with the same bounds, summaries as their ``_count`` and ``_sum`` sums. Names
and labels stay the Prometheus ones, so a query means the same on either path.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from collections import defaultdict
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric as Family

from modelplane.telemetry import names
from modelplane.telemetry.tracing import otlp_protocol, resource

log = logging.getLogger(__name__)

_registries: list[CollectorRegistry] = []
_lock = threading.Lock()
_exporting = threading.Event()


def mirror(registry: CollectorRegistry) -> None:
    """Include ``registry`` in what is exported; nothing is kept while no export runs."""
    if _exporting.is_set():
        with _lock:
            _registries.append(registry)


def wanted() -> bool:
    env = os.environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    chosen = env.get("OTEL_METRICS_EXPORTER")
    if chosen is not None:
        return "otlp" in [e.strip() for e in chosen.split(",")]
    return bool(
        env.get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    )


class MetricsExport:
    """The exporting thread; ``stop`` exports a last time and ends it."""

    def __init__(self, resource: Any, exporter: Any, interval: float) -> None:
        self.resource, self.exporter, self.interval = resource, exporter, interval
        self.started_ns = time.time_ns()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="otlp-metrics", daemon=True)
        _exporting.set()
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.export()

    def export(self) -> None:
        try:
            self.exporter.export(self.collect())
        except Exception:  # an unreachable collector must never take a component down
            log.exception("exporting metrics over OTLP failed")

    def collect(self) -> Any:
        from opentelemetry.sdk.metrics.export import MetricsData, ResourceMetrics, ScopeMetrics
        from opentelemetry.sdk.util.instrumentation import InstrumentationScope

        with _lock:
            registries = list(_registries)
        now = time.time_ns()
        metrics = [
            converted
            for registry in registries
            for family in registry.collect()
            for converted in _convert(family, self.started_ns, now)
        ]
        metrics += [_genai(m) for m in metrics if m.name in names.GENAI_METRIC_ALIASES]
        scope = ScopeMetrics(InstrumentationScope("modelplane"), metrics, schema_url="")
        return MetricsData([ResourceMetrics(self.resource, [scope], schema_url="")])

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.interval + 5)
        self.export()
        self.exporter.shutdown()
        _exporting.clear()
        with _lock:
            _registries.clear()


def start(service_name: str) -> MetricsExport | None:
    if not wanted():
        return None
    interval = float(os.environ.get("OTEL_METRIC_EXPORT_INTERVAL", "60000")) / 1000
    return MetricsExport(resource(service_name), _exporter(), max(interval, 0.1))


def _exporter() -> Any:
    if otlp_protocol("METRICS") == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

        return OTLPMetricExporter()
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
        OTLPMetricExporter as HttpMetricExporter,
    )

    return HttpMetricExporter()


def _genai(metric: Any) -> Any:
    """A generation histogram under the GenAI conventions' name and attribute."""
    points = [
        dataclasses.replace(
            point,
            attributes={
                (names.GEN_AI_REQUEST_MODEL if key == names.LABEL_MODEL else key): value
                for key, value in point.attributes.items()
            },
        )
        for point in metric.data.data_points
    ]
    data = dataclasses.replace(metric.data, data_points=points)
    return dataclasses.replace(
        metric, name=names.GENAI_METRIC_ALIASES[metric.name], unit="s", data=data
    )


def _convert(family: Family, start: int, now: int) -> list[Any]:
    from opentelemetry.sdk.metrics.export import (
        AggregationTemporality,
        Gauge,
        Histogram,
        Metric,
        NumberDataPoint,
        Sum,
    )

    cumulative = AggregationTemporality.CUMULATIVE

    def points(suffix: str) -> list[NumberDataPoint]:
        return [
            NumberDataPoint(dict(s.labels), start, now, s.value)
            for s in family.samples
            if s.name == family.name + suffix
        ]

    def metric(name: str, data: Any) -> Metric:
        return Metric(name, family.documentation, family.unit, data)

    if family.type == "counter":
        return [metric(family.name, Sum(points("_total"), cumulative, is_monotonic=True))]
    if family.type == "gauge":
        return [metric(family.name, Gauge(points("")))]
    if family.type == "summary":
        return [
            metric(family.name + suffix, Sum(points(suffix), cumulative, is_monotonic=True))
            for suffix in ("_count", "_sum")
        ]
    if family.type != "histogram":
        return []
    return [metric(family.name, Histogram(_histogram_points(family, start, now), cumulative))]


def _histogram_points(family: Family, start: int, now: int) -> list[Any]:
    """One OTLP point per label set, from Prometheus's cumulative ``le`` buckets."""
    from opentelemetry.sdk.metrics.export import HistogramDataPoint

    series: dict[tuple[tuple[str, str], ...], dict[str, Any]] = defaultdict(
        lambda: {"buckets": {}, "count": 0, "sum": 0.0}
    )
    for sample in family.samples:
        labels = tuple(sorted((k, v) for k, v in sample.labels.items() if k != "le"))
        found = series[labels]
        if sample.name.endswith("_bucket"):
            found["buckets"][float(sample.labels["le"])] = sample.value
        elif sample.name.endswith("_count"):
            found["count"] = int(sample.value)
        elif sample.name.endswith("_sum"):
            found["sum"] = sample.value
    data_points = []
    for labels, found in series.items():
        bounds = sorted(found["buckets"])
        running = [found["buckets"][b] for b in bounds]  # cumulative, as Prometheus keeps them
        counts = [int(c - p) for c, p in zip(running, [0.0, *running[:-1]], strict=True)]
        unset: Any = None  # min and max: Prometheus does not keep them, so they stay unset
        data_points.append(
            HistogramDataPoint(
                dict(labels),
                start,
                now,
                found["count"],
                found["sum"],
                counts,
                [b for b in bounds if b != float("inf")],
                min=unset,
                max=unset,
            )
        )
    return data_points
