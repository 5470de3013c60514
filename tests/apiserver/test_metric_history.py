"""The metrics API's history: points from the gateway's counters, revisions that retire, and
Prometheus's points joined with the platform's own replicas and traffic."""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.testclient import TestClient

from modelplane.api import Model, RevisionStatus
from modelplane.api.counters import RevisionCounts
from modelplane.apiserver.metric_history import MetricHistory, merged, metrics_routes
from modelplane.apiserver.prometheus_series import PrometheusSeries
from modelplane.backends.local.store import SqliteStore
from modelplane.gateway.stats import LATENCY_BOUNDS_MS
from tests.models import onnx_model

BUCKETS = len(LATENCY_BOUNDS_MS) + 1


def model(*revisions: str) -> Model:
    found = onnx_model()
    found.status.revisions = [
        RevisionStatus(name=r, ready_replicas=1, traffic=100) for r in revisions
    ]
    return found


class Counters:
    def __init__(self) -> None:
        self.requests = 0
        self.errors = 0

    def reading(self, key: str, revision: str) -> RevisionCounts:
        buckets = (0,) * (BUCKETS - 1) + (self.requests,)
        return RevisionCounts(self.requests, self.errors, LATENCY_BOUNDS_MS, buckets)


def test_points_are_rates_since_the_last_sample_and_a_retired_revision_goes() -> None:
    counters = Counters()
    history = MetricHistory(counters.reading, lambda key, revision: 2, interval=5)
    history.sample([model("iris-r1")], now=100.0)  # the base: no point yet
    counters.requests, counters.errors = 40, 4
    history.sample([model("iris-r1")], now=110.0)
    (series,) = history.series("default/iris")["revisions"]
    assert series["revision"] == "iris-r1"
    (point,) = series["points"]
    assert point["requestsPerSecond"] == 4.0  # 40 requests over 10 s, not over the interval
    assert point["errorRate"] == 0.1
    assert (point["inFlight"], point["readyReplicas"], point["traffic"]) == (2, 1, 100)
    history.sample([model("iris-r2")], now=115.0)
    assert [s["revision"] for s in history.series("default/iris")["revisions"]] == []


def test_prometheus_points_take_replicas_and_traffic_from_the_samples_a_step_away() -> None:
    kept = [{"revision": "iris-r1", "points": [
        {"time": 100.0, "inFlight": 1, "readyReplicas": 2, "traffic": 90},
        {"time": 102.4, "inFlight": 0, "readyReplicas": 3, "traffic": 80},
    ]}]  # fmt: skip
    found = {"iris-r1": {99.0: {"requestsPerSecond": 3.0}, 103.0: {"requestsPerSecond": 2.0},
                         200.0: {"requestsPerSecond": 1.0}}}  # fmt: skip
    (series,) = merged(kept, found, step=5)
    first, second, third = series["points"]
    assert first == {"time": 99.0, "requestsPerSecond": 3.0, "inFlight": 1, "readyReplicas": 2,
                     "traffic": 90}  # fmt: skip
    assert second["readyReplicas"] == 3  # the nearest sample, not the first in its 5 s
    assert third["readyReplicas"] is None  # no sample within a step


def test_an_unreachable_prometheus_leaves_the_platform_s_own_points_and_says_why(
    tmp_path: Path,
) -> None:
    store = SqliteStore(tmp_path / "state.db")
    store.create(model())
    history = MetricHistory(Counters().reading, lambda key, revision: 0)
    dead = PrometheusSeries("http://127.0.0.1:1", step=5, span=60)
    app = Starlette(routes=metrics_routes(history, store, dead))
    with TestClient(app) as client:
        reply = client.get("/apis/metrics.modelplane.io/v1alpha1/namespaces/default/models/iris")
    assert reply.status_code == 200
    assert reply.json()["source"] == "gateway"
    assert "prometheus at http://127.0.0.1:1" in reply.json()["warning"]
    store.close()
