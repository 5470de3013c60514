"""The embedded controller: reconciles every stored Model against the replica processes.

Each pass observes (the store's revisions, the supervisor's replicas, the gateway's demand, the
rollout's analysis windows, the namespace's replica cap), asks ``control.planning.plan`` for the
plan, and applies it: a new revision recorded, replicas started or drained through the
supervisor, routes published to the gateway, status and events written back. The loop is driven
by state, not by events: a restart simply reconciles.

A pass takes the Models that may need it: those written since the last pass (the store's change
log), those with new requests or replicas changing state, and those still moving (a rollout in
progress, replicas starting or failing, room to scale down). A settled Model costs nothing
between its writes, so a platform with hundreds of Models idles, and a bulk apply is linear. A
full pass every FULL_PASS_SECONDS catches whatever else time alone changes.

Revision names repeat: across namespaces (``team-a/iris`` and ``team-b/iris`` both have
``iris-r1``) and across a Model deleted and made again. So replicas and manifests are the
Model's key's and a revision's together, and a Model whose uid changed since the last pass is
forgotten (its replicas stopped) before its namesake is reconciled.
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
    Source,
    dump_yaml,
)
from modelplane.api.adapters import ADAPTERS_FILE_ENV, adapter_list
from modelplane.api.manifests import status_wire
from modelplane.api.model import REPORTED_METRICS
from modelplane.api.routing import RouteSink
from modelplane.api.store import Revision
from modelplane.backends.analysis_windows import rollout_windows
from modelplane.backends.evaluation_gates import EvaluationGates
from modelplane.backends.local.store import SqliteStore
from modelplane.backends.local.supervisor import Supervisor
from modelplane.backends.pinning import SourcePins, embedded_credentials, resolve_embedded
from modelplane.backends.replica_reports import ReplicaReports
from modelplane.backends.slo_readings import SLOReadings
from modelplane.backends.usage_rollup import Requested
from modelplane.control.analysis import MetricSource
from modelplane.control.autoscaling import Demand, DemandMemory, Reading, autoscaled
from modelplane.control.planning import ModelPlan, Observed, evaluation_due, plan
from modelplane.control.quotas import ReplicaCap, claims_from
from modelplane.control.reconcile import Phase, Plan, ReplicaView
from modelplane.control.reporting import Reported, reported_from
from modelplane.control.revisions import RevisionRef
from modelplane.control.routes import route_policy
from modelplane.errors import ConflictError, GoneError, NotFoundError

log = logging.getLogger(__name__)

TICK_SECONDS = 0.5
FULL_PASS_SECONDS = 10.0


class LoadSource(Protocol):
    """What the gateway sees of demand, per model and revision."""

    last_request: dict[str, float]  # time.monotonic() of the latest request per model

    def in_flight(self, key: str, revision: str) -> int: ...

    def held(self, key: str) -> int: ...

    def failed_adapters(self, key: str) -> dict[str, str]: ...


@dataclass
class _ModelMemory:
    """What the controller remembers between passes, to report transitions once."""

    demand: DemandMemory = field(default_factory=DemandMemory)
    reported: Reported = field(default_factory=Reported)
    wanted: int | None = None  # replicas its demand asked for at the last pass: its claim
    uid: str | None = None  # of the Model remembered: one made again under its name differs


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
    # New revisions' moving references (a tag, an alias, a branch), resolved once.
    pins: SourcePins = field(default_factory=lambda: SourcePins(resolve_embedded))
    # Each SLO's requests per window: from Prometheus, else from the gateway's own counts.
    slo: SLOReadings = field(default_factory=lambda: SLOReadings(None, "no request counts"))
    # The replicas' own metrics, for Models scaled on one; ``reports.run`` reads them.
    reports: ReplicaReports = field(default_factory=ReplicaReports)
    _memory: dict[str, _ModelMemory] = field(default_factory=dict)
    # (model key, revision name) -> its manifest file, the environment its replicas start with
    # and what each of them requests
    _served: dict[tuple[str, str], tuple[Path, dict[str, str], Requested]] = field(
        default_factory=dict
    )
    _draining: set[asyncio.Task[None]] = field(default_factory=set)
    _told: dict[str, str] = field(default_factory=dict)  # each Model's adapter list, as written
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
        self.gates = EvaluationGates(embedded_credentials, self.demand)
        (self.state_dir / "revisions").mkdir(parents=True, exist_ok=True)
        (self.state_dir / "adapters").mkdir(parents=True, exist_ok=True)

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
            due |= self.supervisor.models()
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
        key, now = model.key, self.clock()
        memory = self._memory.get(key)
        if memory is not None and memory.uid != model.metadata.uid:
            await self._forget(key)  # deleted and made again since the last pass
            memory = None
        if memory is None:
            memory = self._memory[key] = _ModelMemory(
                reported=reported_from(model.status), uid=model.metadata.uid
            )
        stored = self._revisions(model)
        replicas = self.supervisor.views(key)
        newest = max(stored, key=lambda r: r.number).name if stored else None
        refs = tuple(
            RevisionRef(r.name, r.number, r.digest, r.spec["source"]["uri"]) for r in stored
        )
        source, unresolved = await self.pins.observe(model, refs)
        evaluated, verdict = self.gates.observe(model, *self._gate_urls(model))
        observed = Observed(
            revisions=refs,
            replicas=tuple(replicas),
            demand=self._demand(model, memory, newest, now),
            cap=self._replica_cap(model),
            windows=await rollout_windows(self.metrics, model, newest, now),
            reported=memory.reported,
            url=self._url(model),
            source=source,
            unresolved=unresolved,
            evaluated=evaluated,
            evaluation=verdict,
            slo=await self.slo.observe(model, now),
            adapter_failures=self.load.failed_adapters(key),
        )
        decided = plan(model, observed, now)
        self._tell_adapters(model)
        if decided.new_revision:
            self._record_revision(model, decided.revision, decided.source)
        self._claim(model, memory, decided.wanted)
        self._apply(model, decided)
        memory.reported = decided.reported
        self._reconciled_at[key] = time.monotonic()
        if self._settled(model, decided.plan, replicas) and not unresolved:
            self._active.discard(key)
        else:
            self._active.add(key)

    def _apply(self, model: Model, decided: ModelPlan) -> None:
        for revision in decided.plan.start:
            self.supervisor.start(model.key, revision, *self._served[(model.key, revision)])
        self._publish(model, decided.revision.name, decided.plan)
        for replica_id in decided.plan.stop:
            draining = asyncio.get_running_loop().create_task(self.supervisor.stop(replica_id))
            self._draining.add(draining)  # a reference, so the task is not collected mid-drain
            draining.add_done_callback(self._draining.discard)
        meta = model.metadata
        self.store.record_marks(meta.namespace, meta.name, decided.marks)
        self.store.record_incidents(meta.namespace, meta.name, decided.incidents)
        for event in decided.events:
            self.store.record_event(
                meta.namespace, meta.name, event.type, event.reason, event.message
            )
        if status_wire(decided.plan.status) != status_wire(model.status):
            updated = model.model_copy(deep=True)
            updated.status = decided.plan.status
            updated.metadata.resource_version = None
            with contextlib.suppress(Exception):  # deleted meanwhile: the next pass forgets it
                self.store.update(updated, subresource="status")

    def _settled(self, model: Model, plan: Plan, replicas: list[ReplicaView]) -> bool:
        """Nothing left that time alone would change: no rollout step to take, every replica
        ready (or failed for good), none to scale away, no requests in flight."""
        key = model.key
        rollout = plan.status.rollout
        return (
            plan.empty
            and (rollout is None or rollout.phase not in (RolloutPhase.PROGRESSING,
                                                          RolloutPhase.PAUSED))
            and all(r.phase is Phase.READY or r.permanent for r in replicas)
            and len(replicas) <= model.spec.scaling.min_replicas
            and self.load.held(key) == 0
            and not any(self.load.in_flight(key, r) for r in {v.revision for v in replicas})
        )  # fmt: skip

    def _revisions(self, model: Model) -> list[Revision]:
        meta = model.metadata
        revisions = self.store.revisions(meta.namespace, meta.name)
        for revision in revisions:
            self._write_manifest(model.key, revision)
        return revisions

    def _record_revision(self, model: Model, chosen: RevisionRef, source: Source) -> None:
        meta = model.metadata
        pinned = model.spec.model_copy(update={"source": source})
        spec = pinned.model_dump(mode="json", by_alias=True, exclude_none=True)
        recorded = self.store.add_revision(meta.namespace, meta.name, chosen.digest, spec)
        if recorded.name != chosen.name:  # the store numbers revisions; the plan must agree
            raise ConflictError(
                f"revision {recorded.name} recorded where {chosen.name} was planned"
            )
        self._write_manifest(model.key, recorded)

    def _write_manifest(self, key: str, revision: Revision) -> None:
        """The revision as a Model file for its replicas, written when this controller first
        meets it and never changed while they run. A file already there may be a deleted
        namesake's (its replicas stopped when it was forgotten), or from before a restore:
        what the revision serves replaces it."""
        if (key, revision.name) in self._served:
            return
        path = self.state_dir / "revisions" / f"{revision.namespace}.{revision.name}.yaml"
        spec = ModelSpec.model_validate(revision.spec)
        served = Model(
            metadata=ObjectMeta(name=revision.model, namespace=revision.namespace), spec=spec
        )
        text = dump_yaml(served, include_status=False)
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
        env = {**spec.telemetry.env, ADAPTERS_FILE_ENV: str(self._adapters_file(key))}
        self._served[(key, revision.name)] = (path, env, Requested.of(spec.resources))

    def _adapters_file(self, key: str) -> Path:
        return self.state_dir / "adapters" / f"{key.replace('/', '.')}.json"

    def _tell_adapters(self, model: Model) -> None:
        """Write the Model's LoRA adapters where its replicas read them as they run (before
        the gateway routes their names): an edit reaches them without a new revision."""
        path = self._adapters_file(model.key)
        text = adapter_list(model.spec).model_dump_json(by_alias=True)
        if self._told.get(model.key) == text:
            return
        staged = path.with_suffix(".tmp")
        staged.write_text(text)
        staged.replace(path)  # whole: a replica never reads half a list
        self._told[model.key] = text

    def _demand(
        self, model: Model, memory: _ModelMemory, revision: str | None, now: datetime
    ) -> Demand:
        key = model.key
        if revision is None:  # nothing recorded yet: the first revision is born now
            return Demand(born=now)
        in_flight = self.load.in_flight(key, revision) + self.load.held(key)
        last = self.load.last_request.get(key)
        seen = now - timedelta(seconds=time.monotonic() - last) if last else None
        return memory.demand.observe(
            revision, in_flight, seen, now, reading=self._read(model, revision)
        )

    def _read(self, model: Model, revision: str) -> Reading | None:
        """The reported metric ``model`` scales on, from the serving revision's replicas."""
        metric = model.spec.scaling.metric
        if metric not in REPORTED_METRICS or not autoscaled(model.spec.scaling):
            self.reports.forget(model.key)
            return None
        ready = self.supervisor.ready_endpoints(model.key, revision)
        self.reports.track(model.key, (url for _, url in ready))
        return self.reports.reading(model.key, metric, self.load.held(model.key))

    def _replica_cap(self, model: Model) -> ReplicaCap | None:
        """The namespace's replica cap and what its Models claim, oldest first."""
        namespace = model.metadata.namespace
        limit = self.replica_limit(namespace)
        if limit is None:
            return None
        running = self.supervisor.running()
        models, _ = self.store.list_models(namespace)
        found = [(_created(m), m.key, running.get(m.key, 0)) for m in models]
        wanted = {k: m.wanted for k, m in self._memory.items() if m.wanted is not None}
        return ReplicaCap(limit, claims_from(found, wanted))

    def _claim(self, model: Model, memory: _ModelMemory, wanted: int) -> None:
        """Remember what ``model`` wants; under a cap, its younger neighbours may now get more
        room, or less: they are due at the next pass."""
        if memory.wanted == wanted:
            return
        memory.wanted = wanted
        namespace = model.metadata.namespace
        if self.replica_limit(namespace) is not None:
            self._active |= {k for k in self._memory if k.split("/", 1)[0] == namespace}

    def _publish(self, model: Model, latest: str, plan: Plan) -> None:
        stopping = set(plan.stop)
        weights = dict(plan.traffic) or {latest: 100}  # nothing ready: hold for the newest
        revisions = {
            name: (
                weight,
                [
                    (rid, url)
                    for rid, url in self.supervisor.ready_endpoints(model.key, name)
                    if rid not in stopping
                ],
            )
            for name, weight in weights.items()
        }
        shadow, canary = route_policy(model.spec, plan.status)
        adapters = tuple(a.name for a in model.spec.adapters)
        self.routes.publish(
            model.key, model.metadata.name, revisions, shadow, canary,
            openai=model.speaks_openai, adapters=adapters,
        )  # fmt: skip

    def _gate_urls(self, model: Model) -> tuple[str | None, str | None]:
        """A ready replica of the canary the evaluation gate waits on, and of the stable one."""
        due = evaluation_due(model)
        if due is None:
            return None, None
        stable = model.status.stable_revision
        canary = self.supervisor.ready_endpoints(model.key, due)
        serving = self.supervisor.ready_endpoints(model.key, stable) if stable else []
        return (canary[0][1] if canary else None), (serving[0][1] if serving else None)

    async def _forget(self, key: str) -> None:
        self._memory.pop(key, None)
        self.gates.forget(key)
        self._reconciled_at.pop(key, None)
        self._active.discard(key)
        self.pins.forget(key)
        self.metrics.forget(key)
        self.slo.forget(key)
        self.reports.forget(key)
        self.routes.remove(key)
        self._adapters_file(key).unlink(missing_ok=True)
        self._told.pop(key, None)
        owned = [v.id for v in self.supervisor.views(key)]
        await asyncio.gather(*(self.supervisor.stop(rid) for rid in owned))
        # Its manifests are written again for a namesake, which may serve another spec.
        self._served = {k: v for k, v in self._served.items() if k[0] != key}

    def _url(self, model: Model) -> str:
        return f"{self.gateway_url}{model.gateway_path()}"


def _created(model: Model) -> datetime:
    return model.metadata.creation_timestamp or datetime.max.replace(tzinfo=UTC)
