"""The embedded controller: reconciles every stored Model against the replica processes.

Each pass reads the store, records a new revision when a spec's serving fields changed, asks the
autoscaler for a replica count, computes the plan with ``modelplane.control.reconcile``, and applies
it: replicas started or drained through the supervisor, routes published to the gateway, status
and events written back. The loop is driven by state, not by events: a restart simply
reconciles.

A pass takes the Models that may need it: those written since the last pass (the store's change
log), those with new requests or replicas changing state, and those still moving (a rollout in
progress, replicas starting or failing, room to scale down). A settled Model costs nothing
between its writes, so a platform with hundreds of Models idles, and a bulk apply is linear. A
full pass every FULL_PASS_SECONDS catches whatever else time alone changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

from modelplane.api import (
    Model,
    ModelSpec,
    ObjectMeta,
    RolloutPhase,
    dump_yaml,
    revision_digest,
)
from modelplane.api.manifests import status_wire
from modelplane.backends.local.store import Revision, SqliteStore
from modelplane.backends.local.supervisor import Supervisor
from modelplane.backends.planning import plan as plan_for
from modelplane.backends.planning import route_policy
from modelplane.backends.scaling import Demand
from modelplane.control.analysis import MetricSource
from modelplane.control.reconcile import Phase, Plan, ReplicaView, RevisionRef
from modelplane.control.reporting import Reported, events, reported_from
from modelplane.errors import GoneError, NotFoundError

log = logging.getLogger(__name__)

TICK_SECONDS = 0.5
FULL_PASS_SECONDS = 10.0

EndpointList = list[tuple[str, str]]


class RouteSink(Protocol):
    """Where routes go: the gateway's routing table."""

    def publish(
        self,
        key: str,
        name: str,
        revisions: dict[str, tuple[int, EndpointList]],
        shadow: tuple[str, float, str] | None = None,
        canary: str | None = None,
        *,
        openai: bool = False,
    ) -> None:
        """``shadow``: (canary revision, percent of other requests to mirror to it, task);
        ``canary``: the revision on trial, whose failed requests are retried on the others;
        ``openai``: whether the model speaks the OpenAI API."""
        ...

    def remove(self, key: str) -> None: ...


class LoadSource(Protocol):
    """What the gateway sees of demand, per model and revision."""

    last_request: dict[str, float]  # time.monotonic() of the latest request per model

    def in_flight(self, key: str, revision: str) -> int: ...

    def held(self, key: str) -> int: ...


@dataclass
class _ModelMemory:
    """What the controller remembers between passes, to report transitions once."""

    demand: Demand = field(default_factory=Demand)
    reported: Reported = field(default_factory=Reported)
    limited: bool = False  # held back by the namespace's replica quota (said once)


@dataclass
class Controller:
    store: SqliteStore
    supervisor: Supervisor
    routes: RouteSink
    load: LoadSource
    metrics: MetricSource
    state_dir: Path
    gateway_url: str
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    # The most replicas a namespace's Models may run together; None: no limit.
    replica_limit: Callable[[str], int | None] = lambda namespace: None
    _memory: dict[str, _ModelMemory] = field(default_factory=dict)
    _owners: dict[str, str] = field(default_factory=dict)  # revision name -> model key
    # revision name -> its manifest file and the environment its replicas start with
    _served: dict[str, tuple[Path, dict[str, str]]] = field(default_factory=dict)
    _draining: set[asyncio.Task[None]] = field(default_factory=set)
    # What the next pass takes besides the store's changes: Models still moving, Models with
    # demand, whether replicas changed state; and where the change log was read up to.
    _active: set[str] = field(default_factory=set)
    _demanded: set[str] = field(default_factory=set)
    _replicas_changed: bool = False
    _reconciled_at: dict[str, float] = field(default_factory=dict)  # time.monotonic()
    _version: int = 0
    _full_pass_at: float = float("-inf")

    def __post_init__(self) -> None:
        self._wake = asyncio.Event()
        (self.state_dir / "revisions").mkdir(parents=True, exist_ok=True)

    def wake(self) -> None:
        self._wake.set()

    def replicas_changed(self) -> None:
        self._replicas_changed = True
        self._wake.set()

    def demand(self, key: str) -> None:
        """Requests wait for ``key``: reconcile it at once."""
        self._demanded.add(key)
        self._wake.set()

    async def run(self) -> None:
        while True:
            try:
                await self.reconcile_due()
            except Exception:
                log.exception("reconcile pass failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), TICK_SECONDS)
            self._wake.clear()

    async def reconcile_due(self) -> None:
        """Reconcile the Models that may need it (see the module's docstring)."""
        changed = self._changed_keys()
        if changed is None or time.monotonic() - self._full_pass_at >= FULL_PASS_SECONDS:
            await self.reconcile_all()
            return
        due = changed | self._active | self._demanded
        self._demanded = set()
        if self._replicas_changed:
            self._replicas_changed = False
            due |= {key for v in self.supervisor.views() if (key := self._owners.get(v.revision))}
        due |= {
            key
            for key, at in self.load.last_request.items()
            if at > self._reconciled_at.get(key, float("-inf"))
        }
        for key in sorted(due):
            namespace, name = key.split("/", 1)
            try:
                model = self.store.get(namespace, name)
            except NotFoundError:
                if key in self._memory:
                    await self._forget(key)
                self._reconciled_at[key] = time.monotonic()  # its old requests: nothing to do
                continue
            await self._reconcile(model)

    async def reconcile_all(self) -> None:
        self._full_pass_at = time.monotonic()
        self._demanded, self._replicas_changed = set(), False
        models, self._version = self.store.list_models()
        present = {m.key for m in models}
        for model in models:
            await self._reconcile(model)
        for key in [k for k in self._memory if k not in present]:
            await self._forget(key)

    def _changed_keys(self) -> set[str] | None:
        """The Models written since the last pass; None when the log no longer reaches back."""
        try:
            changes = self.store.changes_since(self._version)
        except GoneError:
            return None
        if changes:
            self._version = changes[-1].resource_version
        return {f"{c.model.metadata.namespace}/{c.model.metadata.name}" for c in changes}

    async def _reconcile(self, model: Model) -> None:
        key = model.key
        memory = self._memory.get(key)
        if memory is None:
            memory = self._memory[key] = _ModelMemory(reported=reported_from(model.status))
        latest = self._latest_revision(model)
        self._owners[latest.name] = key
        replicas = [v for v in self.supervisor.views() if self._owners.get(v.revision) == key]
        desired = self._desired(
            model, latest.name, memory, len([r for r in replicas if r.revision == latest.name])
        )
        ref = RevisionRef(latest.name, latest.number, latest.digest)
        plan = await plan_for(
            model, ref, replicas, desired, self.clock(), self._url(model), self.metrics
        )
        for revision in plan.start:
            self.supervisor.start(revision, *self._served[revision])
        self._publish(model, latest.name, plan)
        for replica_id in plan.stop:
            draining = asyncio.get_running_loop().create_task(self.supervisor.stop(replica_id))
            self._draining.add(draining)  # a reference, so the task is not collected mid-drain
            draining.add_done_callback(self._draining.discard)
        self._report(model, plan, memory, desired)
        self._reconciled_at[key] = time.monotonic()
        if self._settled(model, plan, replicas):
            self._active.discard(key)
        else:
            self._active.add(key)

    def _settled(self, model: Model, plan: Plan, replicas: list[ReplicaView]) -> bool:
        """Nothing left that time alone would change: no rollout step to take, every replica
        ready, none to scale away, no requests in flight."""
        key = model.key
        rollout = plan.status.rollout
        return (
            plan.empty
            and (rollout is None or rollout.phase not in (RolloutPhase.PROGRESSING,
                                                          RolloutPhase.PAUSED))
            and all(r.phase is Phase.READY for r in replicas)
            and len(replicas) <= model.spec.scaling.min_replicas
            and self.load.held(key) == 0
            and not any(self.load.in_flight(key, r) for r in {v.revision for v in replicas})
        )  # fmt: skip

    def _latest_revision(self, model: Model) -> Revision:
        meta = model.metadata
        digest = revision_digest(model.spec)
        revisions = self.store.revisions(meta.namespace, meta.name)
        for revision in revisions:
            self._owners[revision.name] = model.key
        if revisions and revisions[-1].digest == digest:
            latest = revisions[-1]
        else:
            spec = model.spec.model_dump(mode="json", by_alias=True, exclude_none=True)
            latest = self.store.add_revision(meta.namespace, meta.name, digest, spec)
            message = f"revision {latest.name} created for generation {meta.generation}"
            self.store.record_event(meta.namespace, meta.name, "Normal", "RevisionCreated", message)
        for revision in [*revisions, latest]:
            self._write_manifest(revision)
        return latest

    def _write_manifest(self, revision: Revision) -> None:
        """The revision as a Model file for its replicas: written once, never changed."""
        if revision.name in self._served:
            return
        path = self.state_dir / "revisions" / f"{revision.namespace}.{revision.name}.yaml"
        spec = ModelSpec.model_validate(revision.spec)
        if not path.exists():
            served = Model(
                metadata=ObjectMeta(name=revision.model, namespace=revision.namespace), spec=spec
            )
            path.write_text(dump_yaml([served], include_status=False))
        self._served[revision.name] = (path, spec.telemetry.env)

    def _desired(self, model: Model, revision: str, memory: _ModelMemory, current: int) -> int:
        key, now = model.key, self.clock()
        in_flight = self.load.in_flight(key, revision) + self.load.held(key)
        last = self.load.last_request.get(key)
        seen = now - timedelta(seconds=time.monotonic() - last) if last else None
        wanted = memory.demand.replicas(model.spec.scaling, revision, current, in_flight, seen, now)
        return self._within_replica_quota(model, wanted, memory)

    def _within_replica_quota(self, model: Model, wanted: int, memory: _ModelMemory) -> int:
        """``wanted``, or as many as the namespace's replica quota leaves beside its other
        Models' replicas (said once, as an event, while it holds a Model back)."""
        namespace = model.metadata.namespace
        limit = self.replica_limit(namespace)
        if limit is None:
            memory.limited = False
            return wanted
        others = sum(
            1
            for view in self.supervisor.views()
            if view.phase is not Phase.STOPPING
            and (owner := self._owners.get(view.revision)) is not None
            and owner != model.key
            and owner.split("/", 1)[0] == namespace
        )
        allowed = max(0, limit - others)
        if wanted > allowed and not memory.limited:
            message = (f"{wanted} replicas wanted, {allowed} allowed: namespace {namespace!r} "
                       f"may run {limit} in all and its other Models run {others}")  # fmt: skip
            self.store.record_event(namespace, model.metadata.name, "Warning",
                                    "ReplicaQuotaReached", message)  # fmt: skip
        memory.limited = wanted > allowed
        return min(wanted, allowed)

    def _publish(self, model: Model, latest: str, plan: Plan) -> None:
        stopping = set(plan.stop)
        weights = dict(plan.traffic) or {latest: 100}  # nothing ready: hold for the newest
        revisions = {
            name: (
                weight,
                [
                    (rid, url)
                    for rid, url in self.supervisor.ready_endpoints(name)
                    if rid not in stopping
                ],
            )
            for name, weight in weights.items()
        }
        shadow, canary = route_policy(model.spec, plan.status)
        self.routes.publish(
            model.key, model.metadata.name, revisions, shadow, canary, openai=model.speaks_openai
        )

    def _report(self, model: Model, plan: Plan, memory: _ModelMemory, desired: int) -> None:
        meta = model.metadata
        found, memory.reported = events(plan, desired, memory.reported)
        for event in found:
            self.store.record_event(
                meta.namespace, meta.name, event.type, event.reason, event.message
            )
        if status_wire(plan.status) != status_wire(model.status):
            updated = model.model_copy(deep=True)
            updated.status = plan.status
            updated.metadata.resource_version = None
            with contextlib.suppress(Exception):  # deleted meanwhile: the next pass forgets it
                self.store.update(updated, subresource="status")

    async def _forget(self, key: str) -> None:
        self._memory.pop(key, None)
        self._reconciled_at.pop(key, None)
        self._active.discard(key)
        self.metrics.forget(key)
        self.routes.remove(key)
        owned = [v.id for v in self.supervisor.views() if self._owners.get(v.revision) == key]
        await asyncio.gather(*(self.supervisor.stop(rid) for rid in owned))

    def replica_addresses(self) -> list[tuple[str, str, str, str]]:
        """(model key, revision, replica id, host:port) of every ready replica."""
        found = []
        for view in self.supervisor.views():
            key = self._owners.get(view.revision)
            if key is None:
                continue
            for replica_id, url in self.supervisor.ready_endpoints(view.revision):
                if replica_id == view.id:
                    found.append((key, view.revision, replica_id, url.removeprefix("http://")))
        return found

    def _url(self, model: Model) -> str:
        return f"{self.gateway_url}{model.gateway_path()}"
