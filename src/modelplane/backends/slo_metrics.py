"""Each Model's availability objective as a Prometheus gauge, computed at scrape from the Models
the backend knows: ``modelplane_slo_objective_ratio{model="<namespace>/<name>"}``. The shipped
burn-rate alerting rules (``deploy/prometheus/slo-rules.yaml``) join on it, so each Model is
judged by its own objective, and only Models with one are judged at all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from modelplane.api import SLO
from modelplane.telemetry import names


class SLOCollector(Collector):
    def __init__(self, objectives: Callable[[], Iterable[tuple[str, float]]]) -> None:
        """``objectives``: (``namespace/name``, availability) of every Model with an SLO."""
        self.objectives = objectives

    def describe(self) -> Iterable[Metric]:
        return []  # computed at scrape: registering must not read the Models

    def collect(self) -> Iterator[Metric]:
        gauge = GaugeMetricFamily(
            names.SLO_OBJECTIVE,
            "The share of requests a Model's SLO wants to succeed (spec.slo.availability).",
            labels=[names.LABEL_MODEL],
        )
        for key, availability in sorted(self.objectives()):
            gauge.add_metric([key], availability)
        yield gauge


def has_slo(body: Mapping[str, Any]) -> bool:
    """Whether a Model as the API server holds it has an SLO."""
    return isinstance((body.get("spec") or {}).get("slo"), dict)


def objectives(models: Mapping[str, Mapping[str, Any]]) -> list[tuple[str, float]]:
    """(key, availability) of the Models with an SLO, from their bodies by key: the default
    where a body leaves it out."""
    default = SLO().availability
    return [
        (key, float(body["spec"]["slo"].get("availability", default)))
        for key, body in models.items()
        if has_slo(body)
    ]
