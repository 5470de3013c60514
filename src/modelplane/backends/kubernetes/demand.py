"""What the operator observes of demand: the gateways' load reports (``load.LoadBoard``) as
``control.autoscaling.Demand`` for the plan, with the pods' own reports (``ReplicaReports``,
read from each ready pod's ``/metrics`` by its IP) for a Model scaled on a reported metric; a
memory of samples per Model, and a loop that queues an autoscaled Model when its replica count
by demand moves between passes (or at once, when a Model at zero gets a request)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta

from modelplane.api import Scaling
from modelplane.api.model import REPORTED_METRICS
from modelplane.backends.kubernetes.caches import WatchCaches
from modelplane.backends.kubernetes.children import LABEL_REVISION
from modelplane.backends.kubernetes.load import LoadBoard
from modelplane.backends.kubernetes.observed import Body, ready_pod_urls
from modelplane.backends.replica_reports import ReplicaReports
from modelplane.control.autoscaling import Demand, DemandMemory, Reading, autoscaled, replicas_for

SCALE_SECONDS = 1.0


class ClusterDemand:
    def __init__(
        self,
        load: LoadBoard,
        caches: WatchCaches,
        queue: Callable[[str], None],
        clock: Callable[[], datetime],
    ) -> None:
        self.load, self.caches, self._queue, self.clock = load, caches, queue, clock
        self.load.on_demand = self._on_demand
        self._memory: dict[str, DemandMemory] = {}
        self.reports = ReplicaReports()
        # Autoscaled Models: their scaling, and the serving revision's replicas as last wanted
        # with what the pods' reports then said (the ScalingActive condition follows it).
        self._scaled: dict[str, tuple[Scaling, int, Said]] = {}

    def of(self, key: str, revision: str | None, now: datetime, scaling: Scaling) -> Demand:
        """Demand for ``revision`` from the gateways' reports (and the pods' own, as
        ``scaling`` asks). While no gateway reports, it is unknown, and the Deployment's
        replicas say what runs."""
        if revision is None:
            return Demand(born=now)
        if not self.load.known():
            # No gateway reports (yet: a restarted operator hears from them within a second).
            live = self.caches.owned("Deployment", key).get(revision)
            scaled_to = int((live.get("spec") or {}).get("replicas") or 0) if live else None
            return Demand(known=False, scaled_to=scaled_to)
        idle = self.load.idle_seconds(key)
        last_request = now - timedelta(seconds=idle) if idle is not None else None
        in_flight = self.load.in_flight(key, revision) + self.load.held(key)
        stored = self.caches.owned("ControllerRevision", key).get(revision)
        born = _created(stored) if stored else None
        memory = self._memory.setdefault(key, DemandMemory())
        reading = self._read(key, revision, scaling)
        return memory.observe(revision, in_flight, last_request, now, born, reading)

    def _read(self, key: str, revision: str, scaling: Scaling) -> Reading | None:
        if scaling.metric not in REPORTED_METRICS or not autoscaled(scaling):
            self.reports.forget(key)
            return None
        self.reports.track(key, ready_pod_urls(self.caches.owned("Pod", key).values(), revision))
        return self.reports.reading(key, scaling.metric, self.load.held(key))

    def decided(self, key: str, scaling: Scaling, wanted: int, demand: Demand) -> None:
        """A pass wanted ``wanted`` replicas for ``key``'s serving revision, on ``demand``."""
        if autoscaled(scaling):
            self._scaled[key] = (scaling, wanted, _said(demand.reading))
        else:
            self._scaled.pop(key, None)

    def forget(self, key: str) -> None:
        self._memory.pop(key, None)
        self.reports.forget(key)
        self._scaled.pop(key, None)

    async def watch(self) -> None:
        """Sample every autoscaled Model's load once a second, and queue those whose replica
        count that changes, or whose pods' reports come or go; meanwhile read those pods."""
        async with asyncio.TaskGroup() as group:
            group.create_task(self.reports.run())
            group.create_task(self._follow())

    async def _follow(self) -> None:
        while True:
            await asyncio.sleep(SCALE_SECONDS)
            for key, (scaling, *decided) in list(self._scaled.items()):
                latest = self.caches.newest_revision(key)
                if latest and self._wanted(key, scaling, latest) != tuple(decided):
                    self._queue(key)

    def _wanted(self, key: str, scaling: Scaling, latest: str) -> tuple[int, Said]:
        current = sum(
            1
            for pod in self.caches.owned("Pod", key).values()
            if (pod["metadata"].get("labels") or {}).get(LABEL_REVISION) == latest
        )
        now = self.clock()
        demand = self.of(key, latest, now, scaling)
        return replicas_for(scaling, demand, current, now), _said(demand.reading)

    def _on_demand(self, key: str) -> None:
        found = self._scaled.get(key)
        if found is not None and found[1] == 0:
            self._queue(key)


# What a reading told a pass: nothing (no reported metric), or whether it had a value and
# whether any replica was there to report.
Said = tuple[bool, bool] | None


def _said(reading: Reading | None) -> Said:
    return None if reading is None else (reading.value is not None, reading.replicas > 0)


def _created(body: Body) -> datetime | None:
    """An object's creationTimestamp: a revision's birth survives operator restarts."""
    stamp = body["metadata"].get("creationTimestamp")
    try:
        return datetime.fromisoformat(str(stamp).replace("Z", "+00:00")) if stamp else None
    except ValueError:
        return None
