"""Each Model's objectives as Prometheus gauges, computed at scrape from the Models the backend
knows: ``modelplane_slo_objective_ratio{model="<namespace>/<name>"}`` (availability) and, with
``latencyP99Ms``, ``modelplane_slo_latency_objective_ratio{model, le}``: 0.99 of requests within
the threshold, ``le`` being the gateway duration histogram's bucket that holds it (the smallest
bound at or above it: a rule can only count whole buckets, so it is lenient by at most that
bucket's width, where the controller interpolates). The shipped burn-rate rules
(``deploy/prometheus/slo-rules.yaml``) join on both, so each Model is judged by its own
objectives, and only Models with one are judged at all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString
from pydantic import ValidationError

from modelplane.api import SLO
from modelplane.control.slo import LATENCY_OBJECTIVE
from modelplane.telemetry import names


class SLOCollector(Collector):
    def __init__(self, objectives: Callable[[], Iterable[tuple[str, SLO]]]) -> None:
        """``objectives``: (``namespace/name``, its SLO) of every Model with one."""
        self.objectives = objectives

    def describe(self) -> Iterable[Metric]:
        return []  # computed at scrape: registering must not read the Models

    def collect(self) -> Iterator[Metric]:
        gauge = GaugeMetricFamily(
            names.SLO_OBJECTIVE,
            "The share of requests a Model's SLO wants to succeed (spec.slo.availability).",
            labels=[names.LABEL_MODEL],
        )
        latency = GaugeMetricFamily(
            names.SLO_LATENCY_OBJECTIVE,
            "The share of requests a Model's SLO wants answered within spec.slo.latencyP99Ms, "
            "with the gateway duration histogram's bucket (le) that holds the threshold.",
            labels=[names.LABEL_MODEL, "le"],
        )
        for key, slo in sorted(self.objectives(), key=lambda found: found[0]):
            gauge.add_metric([key], slo.availability)
            bucket = latency_bucket(slo)
            if bucket is not None:
                latency.add_metric([key, bucket], LATENCY_OBJECTIVE)
        yield gauge
        yield latency


def latency_bucket(slo: SLO) -> str | None:
    """The ``le`` of the gateway's duration bucket holding ``slo``'s latency threshold, as the
    histogram labels it; None without a threshold or past the last bucket (nothing to count)."""
    if slo.latency_p99_ms is None:
        return None
    seconds = slo.latency_p99_ms / 1000
    bound = next((b for b in names.LATENCY_BUCKETS if b >= seconds), None)
    if bound is None:
        return None
    return str(floatToGoString(bound))  # type: ignore[no-untyped-call]  # as the histogram labels it


def has_slo(body: Mapping[str, Any]) -> bool:
    """Whether a Model as the API server holds it has an SLO."""
    return isinstance((body.get("spec") or {}).get("slo"), dict)


def objectives(models: Mapping[str, Mapping[str, Any]]) -> list[tuple[str, SLO]]:
    """(key, SLO) of the Models with a valid one, from their bodies by key."""
    found = []
    for key, body in models.items():
        if not has_slo(body):
            continue
        try:
            found.append((key, SLO.model_validate(body["spec"]["slo"])))
        except ValidationError:
            continue  # the Model is refused with its reason; no objective to judge it by
    return found
