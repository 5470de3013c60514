"""Per-revision request counters kept by the gateway, read by the rollout analysis.

Cumulative, like Prometheus counters: the analysis compares a reading with one taken when the
step began, so nothing here knows about windows or steps. Every update also goes to the
gateway's Prometheus metrics, so a Prometheus-based analysis sees the same numbers.
"""

from __future__ import annotations

import bisect

from modelplane.api.counters import RequestCounts, RevisionCounts
from modelplane.telemetry import names
from modelplane.telemetry.gateway_metrics import GatewayMetrics

# Upper bounds (ms) of the latency buckets; a last bucket catches everything slower.
LATENCY_BOUNDS_MS = tuple(bound * 1000 for bound in names.ANALYSIS_LATENCY_BUCKETS)


class RevisionStats:
    def __init__(self, metrics: GatewayMetrics, model: str, revision: str) -> None:
        self.requests = 0
        self.errors = 0
        self.buckets = [0] * (len(LATENCY_BOUNDS_MS) + 1)
        self.compared = 0  # shadow comparisons with the stable revision's answers
        self.disagreement = 0.0  # their summed disagreement, each 0 (same) .. 1 (different)
        self.measures: set[str] = set()
        self.first_token = [0] * (len(LATENCY_BOUNDS_MS) + 1)
        self.per_token = [0] * (len(LATENCY_BOUNDS_MS) + 1)
        self._model, self._revision, self._metrics = model, revision, metrics
        # Every series exists from the start, so Prometheus sees increases from zero.
        self._successes = metrics.analysis_requests.labels(model, revision, "success")
        self._errors = metrics.analysis_requests.labels(model, revision, "error")
        self._duration = metrics.analysis_duration.labels(model, revision)
        self._first_token = metrics.first_token.labels(model, revision)
        self._per_token = metrics.per_token.labels(model, revision)

    def record(self, seconds: float, failed: bool) -> None:
        self.requests += 1
        if failed:
            self.errors += 1
            self._errors.inc()
        else:
            self._successes.inc()
        self.buckets[_bucket(seconds)] += 1
        self._duration.observe(seconds)

    def generated(self, first_token: float | None, per_token: float | None) -> None:
        """A generated answer's seconds to its first token (streams only) and per output
        token (None where it cannot be told: one token, or no usage said)."""
        if first_token is not None:
            self.first_token[_bucket(first_token)] += 1
            self._first_token.observe(first_token)
        if per_token is not None:
            self.per_token[_bucket(per_token)] += 1
            self._per_token.observe(per_token)

    def compare(self, disagreement: float, measure: str) -> None:
        self.compared += 1
        self.disagreement += disagreement
        self.measures.add(measure)
        labels = (self._model, self._revision, measure)
        self._metrics.shadow_disagreement.labels(*labels).observe(disagreement)

    def reading(self) -> RevisionCounts:
        return RevisionCounts(
            self.requests, self.errors, LATENCY_BOUNDS_MS, tuple(self.buckets),
            self.compared, self.disagreement, tuple(self.first_token), tuple(self.per_token),
            frozenset(self.measures),
        )  # fmt: skip


def _bucket(seconds: float) -> int:
    return bisect.bisect_left(LATENCY_BOUNDS_MS, seconds * 1000)


# The buckets of the gateway's request duration histogram, which an SLO's latency reads.
SERVED_BOUNDS_MS = tuple(bound * 1000 for bound in names.LATENCY_BUCKETS)


class ServedStats:
    """One Model's requests as clients saw them (the one answer each got), for its SLO."""

    def __init__(self) -> None:
        self.requests = 0
        self.errors = 0
        self.buckets = [0] * (len(SERVED_BOUNDS_MS) + 1)

    def record(self, seconds: float, failed: bool) -> None:
        self.requests += 1
        self.errors += failed
        self.buckets[bisect.bisect_left(SERVED_BOUNDS_MS, seconds * 1000)] += 1

    def reading(self) -> RequestCounts:
        return RequestCounts(self.requests, self.errors, SERVED_BOUNDS_MS, tuple(self.buckets))
