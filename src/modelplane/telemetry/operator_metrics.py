"""Prometheus metrics of the Kubernetes operator: its writes to the API server above all, since
a converged cluster should see none."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from modelplane.telemetry import names, otlp_metrics


class OperatorMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = r = registry or CollectorRegistry()
        otlp_metrics.mirror(self.registry)  # pushed over OTLP too, when asked
        self.writes = Counter(
            names.OPERATOR_WRITES,
            "Writes to the Kubernetes API server, by verb and kind.",
            [names.LABEL_VERB, names.LABEL_KIND],
            registry=r,
        )
        self.reconciles = Counter(
            names.OPERATOR_RECONCILES,
            "Reconcile passes by outcome.",
            [names.LABEL_OUTCOME],
            registry=r,
        )
        self.reconcile_duration = Histogram(
            names.OPERATOR_RECONCILE_DURATION,
            "Time one reconcile pass of one Model takes, its API calls included.",
            buckets=names.LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_depth = Gauge(
            names.OPERATOR_QUEUE_DEPTH, "Models waiting to be reconciled.", registry=r
        )
