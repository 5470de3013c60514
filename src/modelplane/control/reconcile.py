"""Reconcile: from a Model, its revisions and the observed replicas to a plan and a status.

Pure and idempotent: the same inputs always give the same plan, and a converged model gives an
empty one, so a backend can crash at any point and recover by reconciling again.

Traffic policy: the newest revision takes all traffic once one of its replicas is ready; until
then the stable revision keeps serving, and after it the stable revision drains and stops. A
newest revision that keeps failing is reported ``Stalled`` with the runtime's reason and never
takes traffic. (Stepped canary traffic and its analysis drive ``traffic`` in the rollout logic.)
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from modelplane.api import Condition, Model, ModelStatus, RevisionStatus
from modelplane.control.conditions import READY, RECONCILING, STALLED, set_condition

CRASH_LOOP_RESTARTS = 3


class Phase(StrEnum):
    STARTING = "Starting"
    READY = "Ready"
    FAILED = "Failed"  # exited; the supervisor restarts it with backoff
    STOPPING = "Stopping"


@dataclass(frozen=True)
class RevisionRef:
    name: str
    number: int
    digest: str


@dataclass(frozen=True)
class ReplicaView:
    id: str
    revision: str
    phase: Phase
    restarts: int = 0
    reason: str = ""


@dataclass(frozen=True)
class Plan:
    start: tuple[str, ...] = ()  # one revision name per replica to start
    stop: tuple[str, ...] = ()  # replica ids to drain and stop
    traffic: dict[str, int] = field(default_factory=dict)
    status: ModelStatus = field(default_factory=ModelStatus)

    @property
    def empty(self) -> bool:
        return not self.start and not self.stop


def reconcile(
    model: Model,
    latest: RevisionRef,
    replicas: list[ReplicaView],
    desired_replicas: int,
    now: datetime,
    url: str | None = None,
) -> Plan:
    """The plan for ``model`` whose newest revision is ``latest``."""
    live = [r for r in replicas if r.phase is not Phase.STOPPING]
    ready = Counter(r.revision for r in live if r.phase is Phase.READY)
    stable = model.status.stable_revision
    serving = latest.name if ready[latest.name] else (stable if stable and ready[stable] else None)
    wanted = {latest.name: desired_replicas}
    if stable and stable != latest.name and serving != latest.name:
        wanted[stable] = max(desired_replicas, 1) if ready[stable] else desired_replicas
    start, stop = _replica_changes(live, wanted)
    traffic = {serving: 100} if serving else {}
    status = _status(model, latest, live, wanted, traffic, serving, stable, now, url)
    return Plan(start=start, stop=stop, traffic=traffic, status=status)


def _replica_changes(
    live: list[ReplicaView], wanted: dict[str, int]
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    start: list[str] = []
    stop: list[str] = []
    by_revision: dict[str, list[ReplicaView]] = {}
    for replica in live:
        by_revision.setdefault(replica.revision, []).append(replica)
    for revision, count in wanted.items():
        have = by_revision.get(revision, [])
        start.extend([revision] * max(0, count - len(have)))
    for revision, have in by_revision.items():
        surplus = len(have) - wanted.get(revision, 0)
        if surplus > 0:
            # Stop the replicas that serve nothing first: failed, then starting, then ready.
            order = {Phase.FAILED: 0, Phase.STARTING: 1, Phase.READY: 2}
            victims = sorted(have, key=lambda r: (order[r.phase], r.id))[:surplus]
            stop.extend(r.id for r in victims)
    return tuple(start), tuple(sorted(stop))


def _status(
    model: Model,
    latest: RevisionRef,
    live: list[ReplicaView],
    wanted: dict[str, int],
    traffic: dict[str, int],
    serving: str | None,
    stable: str | None,
    now: datetime,
    url: str | None,
) -> ModelStatus:
    generation = model.metadata.generation
    counts = Counter(r.revision for r in live)
    ready = Counter(r.revision for r in live if r.phase is Phase.READY)
    names = sorted(set(wanted) | set(counts), key=_revision_number)
    revisions = [
        RevisionStatus(
            name=name,
            digest=latest.digest if name == latest.name else "",
            replicas=counts[name],
            ready_replicas=ready[name],
            traffic=traffic.get(name, 0),
        )
        for name in names
    ]
    failing = [r for r in live if r.revision == latest.name and r.phase is Phase.FAILED]
    stalled = next((r for r in failing if r.restarts >= CRASH_LOOP_RESTARTS), None)
    converged = all(counts[n] == c and ready[n] == c for n, c in wanted.items()) and set(
        counts
    ) <= set(wanted)
    conditions = list(model.status.conditions)
    conditions = _ready_condition(conditions, latest, serving, wanted, stalled, generation, now)
    conditions = set_condition(
        conditions,
        STALLED,
        stalled is not None,
        "RevisionFailing" if stalled else "Progressing",
        f"revision {latest.name} keeps failing: {stalled.reason}" if stalled else "",
        generation,
        now,
    )
    conditions = set_condition(
        conditions,
        RECONCILING,
        not converged and stalled is None,
        "ReplicasChanging" if not converged else "Converged",
        _describe(wanted, counts, ready) if not converged else "",
        generation,
        now,
    )
    return ModelStatus(
        observed_generation=generation,
        conditions=conditions,
        revisions=revisions,
        stable_revision=serving or stable,
        canary_revision=None,
        rollout=model.status.rollout,
        url=url,
    )


def _ready_condition(
    conditions: list[Condition],
    latest: RevisionRef,
    serving: str | None,
    wanted: dict[str, int],
    stalled: ReplicaView | None,
    generation: int | None,
    now: datetime,
) -> list[Condition]:
    if serving == latest.name:
        return set_condition(
            conditions, READY, True, "RevisionReady", f"{latest.name} is serving", generation, now
        )
    if wanted.get(latest.name, 0) == 0 and serving is None:
        message = f"{latest.name} is scaled to zero; the next request starts it"
        return set_condition(conditions, READY, True, "ScaledToZero", message, generation, now)
    if stalled is not None:
        message = f"{latest.name} failed: {stalled.reason}"
        if serving:
            message += f"; {serving} keeps serving"
        return set_condition(conditions, READY, False, "RevisionFailed", message, generation, now)
    message = f"waiting for {latest.name} to become ready"
    if serving:
        message += f"; {serving} is serving meanwhile"
    return set_condition(conditions, READY, False, "RevisionStarting", message, generation, now)


def _describe(wanted: dict[str, int], counts: Counter[str], ready: Counter[str]) -> str:
    return ", ".join(f"{n}: {ready[n]}/{c} ready ({counts[n]} running)" for n, c in wanted.items())


def _revision_number(name: str) -> int:
    suffix = name.rsplit("-r", 1)[-1]
    return int(suffix) if suffix.isdigit() else 0
