"""Traffic figures from two scrapes of a gateway's Prometheus ``/metrics``: requests per
second, error rate, latency percentiles (from histogram buckets, interpolated as Prometheus's
``histogram_quantile`` does) and requests in flight, per model and revision."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

from modelplane.telemetry import names

Key = tuple[str, str]  # (model "namespace/name", revision)


@dataclass
class Scrape:
    """The counters that matter, at one instant."""

    at: float
    requests: dict[Key, float] = field(default_factory=lambda: defaultdict(float))
    errors: dict[Key, float] = field(default_factory=lambda: defaultdict(float))
    buckets: dict[Key, dict[float, float]] = field(default_factory=lambda: defaultdict(dict))
    in_flight: dict[Key, float] = field(default_factory=lambda: defaultdict(float))
    held: dict[str, float] = field(default_factory=lambda: defaultdict(float))


@dataclass(frozen=True)
class Rates:
    requests_per_second: float
    error_rate: float | None  # None without requests
    p50_seconds: float | None
    p99_seconds: float | None
    in_flight: float


def parse(text: str, at: float) -> Scrape:
    found = Scrape(at)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            key = (labels.get(names.LABEL_MODEL, ""), labels.get(names.LABEL_REVISION, ""))
            if sample.name == f"{names.GATEWAY_REQUESTS}_total" and key[1] != "-":
                found.requests[key] += sample.value
                if labels.get(names.LABEL_OUTCOME) == "error":
                    found.errors[key] += sample.value
            elif sample.name == f"{names.GATEWAY_REQUEST_DURATION}_bucket" and key[1] != "-":
                found.buckets[key][float(labels["le"])] = sample.value
            elif sample.name == names.GATEWAY_IN_FLIGHT:
                found.in_flight[key] += sample.value
            elif sample.name == names.GATEWAY_HELD:
                found.held[key[0]] += sample.value
    return found


def rates(before: Scrape, after: Scrape) -> dict[Key, Rates]:
    """What happened between two scrapes, for every (model, revision) the later one shows."""
    seconds = max(after.at - before.at, 1e-9)
    found = {}
    for key in set(after.requests) | set(after.in_flight):
        requests = max(after.requests.get(key, 0.0) - before.requests.get(key, 0.0), 0.0)
        errors = max(after.errors.get(key, 0.0) - before.errors.get(key, 0.0), 0.0)
        delta = {
            bound: count - before.buckets.get(key, {}).get(bound, 0.0)
            for bound, count in after.buckets.get(key, {}).items()
        }
        found[key] = Rates(
            requests_per_second=requests / seconds,
            error_rate=errors / requests if requests else None,
            p50_seconds=quantile(0.5, delta),
            p99_seconds=quantile(0.99, delta),
            in_flight=after.in_flight.get(key, 0.0),
        )
    return found


def quantile(q: float, buckets: dict[float, float]) -> float | None:
    """The q-quantile of cumulative histogram ``buckets`` (upper bound -> count), linearly
    interpolated within its bucket; None without observations."""
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return None
    rank = q * buckets[bounds[-1]]
    lower_bound, lower_count = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):
                return lower_bound  # beyond the last finite bucket: its bound is all we know
            within = (rank - lower_count) / (count - lower_count) if count > lower_count else 0
            return lower_bound + (bound - lower_bound) * within
        lower_bound, lower_count = bound, count
    return None
