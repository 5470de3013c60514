"""Prometheus metrics of the gateway, per model and revision."""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Summary,
    generate_latest,
)

from modelplane.telemetry import names, otlp_metrics

_MODEL_REVISION = [names.LABEL_MODEL, names.LABEL_REVISION]
_MODEL_PRIORITY = [names.LABEL_MODEL, names.LABEL_PRIORITY]


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = r = registry or CollectorRegistry()
        otlp_metrics.mirror(self.registry)  # pushed over OTLP too, when asked
        self.requests = Counter(
            names.GATEWAY_REQUESTS,
            "Requests through the gateway by outcome.",
            [*_MODEL_REVISION, names.LABEL_OUTCOME],
            registry=r,
        )
        self.duration = Histogram(
            names.GATEWAY_REQUEST_DURATION,
            "Time from receiving a request to its response, holds and retries included.",
            _MODEL_REVISION,
            buckets=names.LATENCY_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge(
            names.GATEWAY_IN_FLIGHT, "Requests being proxied now.", _MODEL_REVISION, registry=r
        )
        self.held = Gauge(
            names.GATEWAY_HELD,
            "Requests held while a model has no ready replica (cold start).",
            [names.LABEL_MODEL],
            registry=r,
        )
        self.retries = Counter(
            names.GATEWAY_RETRIES,
            "Requests retried on another replica.",
            [names.LABEL_MODEL],
            registry=r,
        )
        self.refused = Counter(
            names.GATEWAY_REFUSED,
            "Requests refused before any replica: unauthenticated, forbidden, over quota.",
            [names.LABEL_NAMESPACE, names.LABEL_REASON],
            registry=r,
        )
        self.flow_waiting = Gauge(
            names.GATEWAY_FLOW_WAITING,
            "Requests waiting in the gateway for a saturated model, by priority.",
            _MODEL_PRIORITY,
            registry=r,
        )
        self.flow_wait = Histogram(
            names.GATEWAY_FLOW_WAIT,
            "Time a request waited in the gateway for a saturated model's replica to have room.",
            _MODEL_PRIORITY,
            buckets=names.LATENCY_BUCKETS,
            registry=r,
        )
        self.flow_shed = Counter(
            names.GATEWAY_FLOW_SHED,
            "Requests refused by the waiting room of a saturated model: full, priority or "
            "fair_share (shed for another), timeout (waited too long), disconnected.",
            [*_MODEL_PRIORITY, names.LABEL_REASON],
            registry=r,
        )

        self.analysis_requests = Counter(
            names.ANALYSIS_REQUESTS,
            "Requests as the rollout analysis judges each revision: success or error (5xx, or no "
            "answer). A canary's failed attempt counts here even when another revision answered.",
            [*_MODEL_REVISION, names.LABEL_OUTCOME],
            registry=r,
        )
        self.analysis_duration = Histogram(
            names.ANALYSIS_REQUEST_DURATION,
            "Latency of each revision's answers, as the rollout analysis judges it.",
            _MODEL_REVISION,
            buckets=names.ANALYSIS_LATENCY_BUCKETS,
            registry=r,
        )
        self.shadow_disagreement = Summary(
            names.SHADOW_DISAGREEMENT,
            "Disagreement of a canary's answer to a mirrored request with the stable answer, "
            "0 (same) to 1 (different), by how it was measured.",
            [*_MODEL_REVISION, names.LABEL_MEASURE],
            registry=r,
        )
        self.first_token = Histogram(
            names.ANALYSIS_FIRST_TOKEN,
            "Time to the first token of each revision's streamed answers (generated text).",
            _MODEL_REVISION,
            buckets=names.ANALYSIS_LATENCY_BUCKETS,
            registry=r,
        )
        self.per_token = Histogram(
            names.ANALYSIS_PER_TOKEN,
            "Time per output token of each revision's answers (generated text): after the first "
            "token in a stream, over the whole answer otherwise.",
            _MODEL_REVISION,
            buckets=names.ANALYSIS_LATENCY_BUCKETS,
            registry=r,
        )

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
