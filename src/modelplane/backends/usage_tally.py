"""Usage counted in memory by a process that keeps no record of its own: on a cluster the
operator counts the replicas (pods) of its Models and each gateway the answers it relayed, and
Prometheus, scraping their ``modelplane_usage_*`` counters (``usage_metrics.py``), keeps the
history; ``modelplane usage --prometheus`` reads it back as the embedded report.

A counter starts again from 0 when its process does (a new operator leader, a restarted
gateway); Prometheus' ``increase`` counts across such resets."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from modelplane.backends.usage_rollup import Requested, Rollup, Usage

Revision = tuple[str, str, str]  # namespace, Model, revision
# One replica as observed: its id, revision, what it requested, and whether it counts now
# (starting or ready).
ReplicaUsage = tuple[str, str, Requested, bool]


class UsageTally:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._rollup = Rollup()
        self._totals: dict[Revision, Usage] = {}
        self._replicas: dict[str, set[str]] = {}  # Model key -> replica ids counted last time

    def observe(self, model_key: str, replicas: Iterable[ReplicaUsage]) -> None:
        """Every replica of ``model_key`` there is now; one observed before and missing now is
        gone (as are all of a deleted Model's: pass none)."""
        now, seen = self.clock(), set()
        for replica_id, revision, requested, counted in replicas:
            self._rollup.replica(replica_id, model_key, revision, requested, counted, now)
            seen.add(replica_id)
        for gone in self._replicas.pop(model_key, set()) - seen:
            self._rollup.replica(gone, model_key, "", Requested(), False, now)
        if seen:
            self._replicas[model_key] = seen

    def answered(
        self, model_key: str, revision: str, status: int, prompt: int, completion: int
    ) -> None:
        """The gateway's hook: a request to ``model_key``'s ``revision`` finished."""
        self._rollup.answered(model_key, revision, status, prompt, completion, self.clock())

    def totals(self) -> dict[Revision, Usage]:
        """Everything counted since the process started, per namespace, Model and revision."""
        for (namespace, model, revision, _), used in self._rollup.take(self.clock()).items():
            self._totals.setdefault((namespace, model, revision), Usage()).add(used)
        return self._totals
