"""Prometheus metrics of the runtime, built on a registry the composition root passes in."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from modelplane.telemetry import names, otlp_metrics

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class RuntimeMetrics:
    """The runtime's metrics for one model; a fresh registry per instance keeps tests apart."""

    def __init__(self, model: str, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        otlp_metrics.mirror(self.registry)  # pushed over OTLP too, when asked
        labels = {names.LABEL_MODEL: model}
        r = self.registry
        self._requests = Counter(
            names.RUNTIME_REQUESTS,
            "Inference requests by outcome.",
            [names.LABEL_MODEL, names.LABEL_OUTCOME],
            registry=r,
        )
        self._model = model
        self._by_outcome: dict[str, Counter] = {}
        self.request_duration = Histogram(
            names.RUNTIME_REQUEST_DURATION,
            "Time from receiving an inference request to its response.",
            [names.LABEL_MODEL],
            buckets=names.LATENCY_BUCKETS,
            registry=r,
        ).labels(**labels)
        self.queue_duration = Histogram(
            names.RUNTIME_QUEUE_DURATION,
            "Time a request waited for its batch to start.",
            [names.LABEL_MODEL],
            buckets=names.LATENCY_BUCKETS,
            registry=r,
        ).labels(**labels)
        self.inference_duration = Histogram(
            names.RUNTIME_INFERENCE_DURATION,
            "Time of one model call (one batch).",
            [names.LABEL_MODEL],
            buckets=names.LATENCY_BUCKETS,
            registry=r,
        ).labels(**labels)
        self.batch_size = Histogram(
            names.RUNTIME_BATCH_SIZE,
            "Requests merged into one model call.",
            [names.LABEL_MODEL],
            buckets=names.BATCH_BUCKETS,
            registry=r,
        ).labels(**labels)
        self.in_flight = Gauge(
            names.RUNTIME_IN_FLIGHT,
            "Inference requests being served now.",
            [names.LABEL_MODEL],
            registry=r,
        ).labels(**labels)
        self.ready = Gauge(
            names.RUNTIME_MODEL_READY,
            "1 when the model is loaded and serving.",
            [names.LABEL_MODEL],
            registry=r,
        ).labels(**labels)

    def count(self, outcome: str) -> None:
        child = self._by_outcome.get(outcome)
        if child is None:
            child = self._by_outcome[outcome] = self._requests.labels(self._model, outcome)
        child.inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
