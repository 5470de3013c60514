"""Release figures as Prometheus metrics, computed at scrape time from the release history the
backend already keeps (nothing is counted on the request path, and a restart loses nothing).

- ``modelplane_releases_total{namespace, model, outcome}``: ``promoted`` (reached 100%),
  ``rolled_back``, ``aborted``, and ``undone`` (promoted, then brought back within the undo
  window; counted under ``promoted`` too). Change-failure rate is therefore
  ``(rolled_back + aborted + undone) / (promoted + rolled_back + aborted)``.
- ``modelplane_release_lead_time_seconds{namespace, model}``: commit (or apply) to promotion.
- ``modelplane_release_time_to_restore_seconds{namespace, model}``: how long a failed release
  served traffic, and how long each SLO breach lasted (from ``SLOBreached`` turning True to its
  turning False).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import timedelta

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from modelplane.api.releases import RevisionHistory
from modelplane.control.releases import DEFAULT_UNDO_WINDOW, Outcome, incidents_of, releases

# From minutes (a hotfix) to a week (a quarterly model refresh).
BUCKETS = (60.0, 300.0, 900.0, 1800.0, 3600.0, 10_800.0, 21_600.0, 43_200.0, 86_400.0,
           172_800.0, 604_800.0)  # fmt: skip
_COUNTED = {
    Outcome.PROMOTED: ("promoted",),
    Outcome.UNDONE: ("promoted", "undone"),
    Outcome.ROLLED_BACK: ("rolled_back",),
    Outcome.ABORTED: ("aborted",),
}
LABELS = ["namespace", "model"]


class ReleaseCollector(Collector):
    def __init__(
        self,
        history: Callable[[], Iterable[RevisionHistory]],
        undo_window: timedelta = DEFAULT_UNDO_WINDOW,
    ) -> None:
        self.history, self.undo_window = history, undo_window

    def describe(self) -> Iterable[Metric]:
        return []  # computed at scrape: registering must not read the history

    def collect(self) -> Iterator[Metric]:
        history = list(self.history())
        found = releases(history, self.undo_window)
        counts = CounterMetricFamily(
            "modelplane_releases", "Releases finished, by outcome.", labels=[*LABELS, "outcome"]
        )
        counted: dict[tuple[str, str, str], int] = {}
        leads: dict[tuple[str, str], list[float]] = {}
        restores: dict[tuple[str, str], list[float]] = {}
        for release in found:
            key = (release.namespace, release.model)
            for outcome in _COUNTED.get(release.outcome, ()):
                counted[(*key, outcome)] = counted.get((*key, outcome), 0) + 1
            if release.lead_time is not None:
                leads.setdefault(key, []).append(release.lead_time.total_seconds())
            if release.time_to_restore is not None:
                restores.setdefault(key, []).append(release.time_to_restore.total_seconds())
        for incident in incidents_of(history):
            if incident.restored is not None:
                restored = (incident.restored - incident.started).total_seconds()
                restores.setdefault((incident.namespace, incident.model), []).append(restored)
        for labels, count in sorted(counted.items()):
            counts.add_metric(list(labels), count)
        yield counts
        yield _histogram(
            "modelplane_release_lead_time_seconds",
            "From the change's commit (else its apply) to promotion.",
            leads,
        )
        yield _histogram(
            "modelplane_release_time_to_restore_seconds",
            "How long a failed release served traffic before it was rolled back or undone, and "
            "how long each SLO breach lasted.",
            restores,
        )


def _histogram(
    name: str, about: str, values: dict[tuple[str, str], list[float]]
) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, about, labels=LABELS)
    for labels, seen in sorted(values.items()):
        cumulative = [
            (f"{bound:g}", float(sum(1 for v in seen if v <= bound))) for bound in BUCKETS
        ]
        cumulative.append(("+Inf", float(len(seen))))
        family.add_metric(list(labels), cumulative, sum(seen))
    return family
