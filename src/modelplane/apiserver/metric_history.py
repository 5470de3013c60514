"""Recent metrics of every model's revisions, kept in memory and served as a metrics API.

The portal draws requests/s, errors, latency percentiles, in-flight requests and replicas per
revision over time, and a rollout's analysis against its thresholds. ``modelplane top`` gets
the same numbers from two scrapes; a page cannot wait that long, so the embedded platform samples
the gateway's per-revision counters every few seconds and keeps an hour of points:

    GET /apis/metrics.modelplane.io/v1alpha1/models                          latest, every model
    GET /apis/metrics.modelplane.io/v1alpha1/namespaces/{ns}/models/{name}   series of one model

With a Prometheus beside the platform, a model's series come from it (``source: prometheus``):
they outlive a restart. Both read like the Kubernetes metrics API (``metrics.k8s.io``): a kind,
a window and items. Access control treats them like the Models they describe (``viewer``).
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from modelplane.api import Model, RevisionStatus, RolloutPhase
from modelplane.api.counters import RevisionCounts
from modelplane.api.store import Store
from modelplane.apiserver.http import error_response, principal_of
from modelplane.apiserver.prometheus_series import Points, PrometheusSeries
from modelplane.control.analysis import quantile_ms
from modelplane.errors import MetricsUnavailableError, NotFoundError
from modelplane.security.roles import Action

log = logging.getLogger(__name__)

METRICS_PREFIX = "/apis/metrics.modelplane.io/v1alpha1"
INTERVAL_SECONDS = 5.0
KEPT_POINTS = 720  # an hour at the default interval


@dataclass(frozen=True)
class Point:
    """What one revision did between two samples; rates and percentiles are None without
    requests."""

    time: float  # unix seconds at the end of the interval
    requests_per_second: float
    error_rate: float | None
    p50_ms: float | None
    p99_ms: float | None
    in_flight: int
    ready_replicas: int
    traffic: int

    def wire(self) -> dict[str, float | int | None]:
        names = {
            "requests_per_second": "requestsPerSecond",
            "error_rate": "errorRate",
            "p50_ms": "p50Ms",
            "p99_ms": "p99Ms",
            "in_flight": "inFlight",
            "ready_replicas": "readyReplicas",
        }
        return {names.get(k, k): v for k, v in asdict(self).items()}


@dataclass(frozen=True)
class AnalysisPoint:
    """One rollout analysis as the controller recorded it, at the time it was sampled."""

    time: float
    step: int
    metrics: tuple[tuple[str, float | None, float, bool], ...]  # name, value, threshold, passed

    def wire(self) -> dict[str, object]:
        return {
            "time": self.time,
            "step": self.step,
            "metrics": [
                {"name": n, "value": v, "threshold": t, "passed": p} for n, v, t, p in self.metrics
            ],
        }


class MetricHistory:
    """Samples ``reading`` (cumulative counters of one revision) for every model's revisions."""

    def __init__(
        self,
        reading: Callable[[str, str], RevisionCounts],
        in_flight: Callable[[str, str], int],
        interval: float = INTERVAL_SECONDS,
        kept: int = KEPT_POINTS,
    ) -> None:
        self._reading, self._in_flight = reading, in_flight
        self.interval, self._kept = interval, kept
        self._last: dict[tuple[str, str], tuple[float, RevisionCounts]] = {}
        self._points: dict[tuple[str, str], deque[Point]] = {}
        self._analyses: dict[str, deque[AnalysisPoint]] = {}

    def sample(self, models: Iterable[Model], now: float) -> None:
        seen: set[tuple[str, str]] = set()
        for model in models:
            for revision in model.status.revisions:
                key = (model.key, revision.name)
                seen.add(key)
                counts = self._reading(*key)
                before = self._last.get(key)
                self._last[key] = (now, counts)
                if before is not None and now > before[0]:
                    point = self._point(before, counts, now, model.key, revision)
                    self._points.setdefault(key, deque(maxlen=self._kept)).append(point)
            self._note_analysis(model, now)
        for gone in set(self._last) - seen:  # a revision retired or a model deleted
            self._last.pop(gone, None)
            self._points.pop(gone, None)
        models_seen = {key for key, _ in seen}
        for gone_model in set(self._analyses) - models_seen:
            del self._analyses[gone_model]

    def _point(
        self,
        last: tuple[float, RevisionCounts],
        after: RevisionCounts,
        now: float,
        key: str,
        revision: RevisionStatus,
    ) -> Point:
        then, before = last
        requests = after.requests - before.requests
        buckets = [b - a for a, b in zip(before.buckets, after.buckets, strict=True)]
        return Point(
            time=round(now, 3),
            requests_per_second=round(requests / (now - then), 3),
            error_rate=round((after.errors - before.errors) / requests, 4) if requests else None,
            p50_ms=_rounded(quantile_ms(after.bounds_ms, buckets, 0.50)),
            p99_ms=_rounded(quantile_ms(after.bounds_ms, buckets, 0.99)),
            in_flight=self._in_flight(key, revision.name),
            ready_replicas=revision.ready_replicas,
            traffic=revision.traffic,
        )

    def _note_analysis(self, model: Model, now: float) -> None:
        state = model.status.rollout
        if state is None or state.phase != RolloutPhase.PROGRESSING:
            return
        found = state.last_analysis
        if found is None:
            return
        metrics = tuple((m.name, m.value, m.threshold, m.passed) for m in found.metrics)
        kept = self._analyses.setdefault(model.key, deque(maxlen=self._kept))
        kept.append(AnalysisPoint(round(now, 3), state.step, metrics))

    def series(self, key: str) -> dict[str, object]:
        """Every kept point of ``key``'s revisions and the analyses of its rollout."""
        revisions = [
            {"revision": revision, "points": [p.wire() for p in points]}
            for (model, revision), points in sorted(self._points.items())
            if model == key
        ]
        analyses = [a.wire() for a in self._analyses.get(key, ())]
        return {"revisions": revisions, "analyses": analyses}

    def latest(self, key: str) -> dict[str, object]:
        """The model's last interval, its revisions summed (latencies: the worst revision)."""
        last = [points[-1] for (model, _), points in self._points.items() if model == key]
        requests = sum(p.requests_per_second for p in last)
        errors = sum(p.requests_per_second * (p.error_rate or 0.0) for p in last)
        worst = [p.p99_ms for p in last if p.p99_ms is not None]
        return {
            "time": max((p.time for p in last), default=None),
            "requestsPerSecond": round(requests, 3),
            "errorRate": round(errors / requests, 4) if requests else None,
            "p99Ms": max(worst, default=None),
            "inFlight": sum(p.in_flight for p in last),
        }

    async def run(self, store: Store) -> None:
        """Sample every ``interval`` seconds until cancelled."""
        while True:
            try:
                models, _ = store.list_models()
                self.sample(models, time.time())
            except Exception:  # a failed sample costs one point, never the history
                log.exception("sampling the gateway's counters failed")
            await asyncio.sleep(self.interval)


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def merged(kept: list[dict[str, Any]], found: Points, step: float) -> list[dict[str, Any]]:
    """Prometheus's points per revision, each with the replicas, traffic and in-flight count
    that ``kept`` (this platform's own samples) has within a step of it, where it has them."""
    own = {entry["revision"]: entry["points"] for entry in kept}  # each in time order
    revisions = []
    for revision, by_time in sorted(found.items()):
        samples = own.get(revision, [])
        times = [p["time"] for p in samples]
        points = []
        for at, values in sorted(by_time.items()):
            near = _nearest(samples, times, at, step)
            extra = {k: near.get(k) for k in ("inFlight", "readyReplicas", "traffic")}
            points.append({"time": at, **values, **extra})
        revisions.append({"revision": revision, "points": points})
    return revisions


def _nearest(
    samples: list[dict[str, Any]], times: list[float], at: float, within: float
) -> dict[str, Any]:
    """The sample closest in time to ``at``, if one is ``within`` seconds of it; else {}."""
    index = bisect.bisect_left(times, at)
    close = [i for i in (index - 1, index) if 0 <= i < len(samples)]
    best = min(close, key=lambda i: abs(times[i] - at), default=None)
    return samples[best] if best is not None and abs(times[best] - at) <= within else {}


def metrics_routes(
    history: MetricHistory, store: Store, prometheus: PrometheusSeries | None = None
) -> list[Route]:
    """The metrics API over ``history`` (and ``prometheus``, when the platform has one); models
    come from ``store`` so deleted ones vanish."""

    def respond(body: dict[str, object]) -> Response:
        body = {"apiVersion": "metrics.modelplane.io/v1alpha1", **body}
        body["window"] = f"{history.interval:g}s"
        return Response(orjson.dumps(body), media_type="application/json")

    async def every_model(request: Request) -> Response:
        principal = principal_of(request)
        models, _ = store.list_models()
        items = [
            {"namespace": m.metadata.namespace, "name": m.metadata.name, **history.latest(m.key)}
            for m in models
            if principal.may(Action.READ, m.metadata.namespace)
        ]
        return respond({"kind": "ModelMetricsList", "items": items})

    async def one_model(request: Request) -> Response:
        namespace, name = request.path_params["namespace"], request.path_params["name"]
        try:
            store.get(namespace, name)
        except NotFoundError as exc:
            return error_response(exc)
        series: dict[str, Any] = {**history.series(f"{namespace}/{name}"), "source": "gateway"}
        if prometheus is not None:
            try:
                found = await prometheus.points(f"{namespace}/{name}", time.time())
                series["revisions"] = merged(series["revisions"], found, history.interval)
                series["source"] = "prometheus"
            except MetricsUnavailableError as exc:  # the platform's own samples still answer
                series["warning"] = str(exc)
        return respond({"kind": "ModelMetrics", "namespace": namespace, "name": name, **series})

    return [
        Route(METRICS_PREFIX + "/models", every_model),
        Route(METRICS_PREFIX + "/namespaces/{namespace}/models/{name}", one_model),
    ]
