"""The operator's reconciler: from the cluster's objects (kept current by watches) to the
children a Model needs, its status and its events, with ``modelplane.control`` deciding.

Reconciles by state, never by event: any change to a Model or to what it owns queues the Model,
and a pass reads only the watch caches, so a converged Model costs no API call at all. Every
write is server-side apply with the ``modelplane`` field manager (or a create of an immutable
object), so a pass interrupted anywhere is finished by the next one, without duplicates.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from lightkube import AsyncClient
from lightkube.generic_resource import create_namespaced_resource
from lightkube.resources.apps_v1 import ControllerRevision, Deployment
from lightkube.resources.core_v1 import ConfigMap, Pod, Service
from lightkube.resources.policy_v1 import PodDisruptionBudget

from modelplane.api import (
    GROUP,
    KIND,
    VERSION,
    Model,
    ModelSpec,
    ModelStatus,
    ObjectMeta,
    RolloutPhase,
    Source,
)
from modelplane.api.adapters import serves_adapters
from modelplane.api.manifests import status_wire
from modelplane.api.releases import Incident, Mark
from modelplane.backends.analysis_windows import rollout_windows
from modelplane.backends.evaluation_gates import EvaluationGates
from modelplane.backends.kubernetes import children
from modelplane.backends.kubernetes.caches import WatchCaches
from modelplane.backends.kubernetes.children import (
    LABEL_MANAGED_BY,
    LABEL_REVISION,
    MANAGER,
    ClusterSettings,
)
from modelplane.backends.kubernetes.credentials import secret_credentials
from modelplane.backends.kubernetes.demand import ClusterDemand
from modelplane.backends.kubernetes.load import LoadBoard
from modelplane.backends.kubernetes.observed import (
    Body,
    StoredRevision,
    meta_of,
    model_from,
    ready_pod_url,
    replica_view,
    stored_revision,
    without_managed_fields,
)
from modelplane.backends.kubernetes.release_history import (
    history_of,
    incident_annotations,
    new_annotations,
)
from modelplane.backends.kubernetes.replica_quotas import ReplicaQuotas
from modelplane.backends.kubernetes.workqueue import WorkQueue
from modelplane.backends.kubernetes.writing import ClusterWrites, Leading
from modelplane.backends.pinning import SourcePins, resolver
from modelplane.backends.release_metrics import ReleaseCollector
from modelplane.backends.slo_metrics import SLOCollector, has_slo, objectives
from modelplane.backends.slo_readings import SLOReadings
from modelplane.backends.usage_metrics import UsageCollector
from modelplane.backends.usage_rollup import COUNTED, Requested
from modelplane.backends.usage_tally import ReplicaUsage, UsageTally
from modelplane.control.analysis import MetricSource
from modelplane.control.conditions import refused
from modelplane.control.planning import ModelPlan, Observed, evaluation_due, plan
from modelplane.control.reconcile import Plan, ReplicaView
from modelplane.control.reporting import Reported, reported_from
from modelplane.control.revisions import RevisionRef
from modelplane.control.slo import SLOSource
from modelplane.errors import CacheBehindError, KubernetesError, ModelplaneError, SpecError
from modelplane.telemetry.operator_metrics import OperatorMetrics

log = logging.getLogger(__name__)

ModelResource = create_namespaced_resource(GROUP, VERSION, KIND, "models")
HTTPRoute = create_namespaced_resource("gateway.networking.k8s.io", "v1", "HTTPRoute", "httproutes")
InferencePool = create_namespaced_resource(
    "inference.networking.k8s.io", "v1", "InferencePool", "inferencepools"
)

# Kinds the operator owns, by the ``kind`` their manifests carry.
RESOURCES: dict[str, Any] = {
    "Deployment": Deployment,
    "Service": Service,
    "PodDisruptionBudget": PodDisruptionBudget,
    "HTTPRoute": HTTPRoute,
    "InferencePool": InferencePool,  # with the Gateway API Inference Extension installed
    "ControllerRevision": ControllerRevision,
    "ConfigMap": ConfigMap,  # the LoRA adapters a Model's pods serve now
}
PER_REVISION = ("Deployment", "Service", "PodDisruptionBudget", "InferencePool")
TICK_SECONDS = 2.0  # time-driven decisions (rollout steps, analysis) need a pass now and then
RETRY_SECONDS = 2.0
BUILT_CACHE = 20_000
RESYNC_SECONDS = 300.0
PERMANENT_RETRY_SECONDS = 30.0
NO_PROMETHEUS = "no Prometheus to count requests: start the operator with --prometheus URL"


class Operator:
    def __init__(
        self,
        client: AsyncClient,
        settings: ClusterSettings,
        metrics: MetricSource | None = None,
        gateway_api: bool = False,
        telemetry: OperatorMetrics | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        load: LoadBoard | None = None,
        slo: SLOSource | None = None,
        leading: Leading | None = None,  # with leader election: writes only while it holds
        inference_pools: bool = False,  # the Gateway API Inference Extension is installed
    ) -> None:
        self.settings, self.metrics = settings, metrics
        self.gateway_api, self.clock = gateway_api, clock
        self.inference_pools = inference_pools
        self.telemetry = telemetry or OperatorMetrics()
        self.writes = ClusterWrites(client, self.telemetry, leading)
        self.telemetry.registry.register(
            ReleaseCollector(lambda: history_of(self.caches.every("ControllerRevision")))
        )
        self.telemetry.registry.register(SLOCollector(lambda: objectives(self.caches.models)))
        # What the Models' pods hold, counted while leading; Prometheus keeps the history.
        self.usage = UsageTally()
        self.telemetry.registry.register(UsageCollector(self.usage.totals))
        self.slo = SLOReadings(slo, NO_PROMETHEUS)
        self.queue = WorkQueue()
        self.caches = WatchCaches([*RESOURCES, "Pod"])
        self.load = load or LoadBoard()
        self.demand = ClusterDemand(self.load, self.caches, self.queue.add, clock)
        self.load.on_adapters = self.queue.add  # AdaptersReady follows the gateways' reports
        self._reported: dict[str, Reported] = {}
        # Built Deployments by (Model uid, revision, replicas): revisions are immutable, and
        # rendering one (its manifest as YAML, its hash) is most of a pass's CPU.
        self._built: dict[tuple[str | None, str, int], Body] = {}
        self.replica_quotas = ReplicaQuotas(self._requeue_namespace)
        self.pins = SourcePins(resolver(secret_credentials(client)))
        self.gates = EvaluationGates(secret_credentials(client), self.queue.add)

    # -- what the watches say ---------------------------------------------------------------

    def observe(self, kind: str, event_type: str | None, body: Body) -> None:
        """A watch event (``event_type`` None for the initial listing) of a Model or a child."""
        body = without_managed_fields(body)
        if kind != KIND:
            owner = self.caches.observe_owned(kind, event_type, body)
            if owner is not None and owner in self.caches.models:
                self.queue.add(owner)
            return
        key = self.caches.observe_model(event_type, body)
        if key is None:
            return
        if event_type == "DELETED":
            self._forget(key)
            self._requeue_namespace(key.split("/", 1)[0])  # room a replica cap held back is free
        self.queue.add(key)

    def _forget(self, key: str) -> None:
        """What is kept of a deleted Model beside the caches."""
        self.replica_quotas.forget(key)
        self.pins.forget(key)
        self.gates.forget(key)
        self._reported.pop(key, None)
        self.demand.forget(key)
        self.slo.forget(key)
        if self.metrics is not None:
            self.metrics.forget(key)

    async def sync(self, namespaces: tuple[str, ...] = ()) -> None:
        """Replace every cache with a list call: before the first pass (a pass on half-filled
        caches would take a missing revision for a new one, or missing pods for none), and now
        and then after (a watch that reconnects lists again, and what was deleted meanwhile
        sends no event: only a fresh list drops it)."""
        kinds: dict[str, Any] = {KIND: ModelResource, **RESOURCES, "Pod": Pod}
        if not self.gateway_api:
            del kinds["HTTPRoute"]
        if not self.inference_pools:
            del kinds["InferencePool"]
        for kind, resource in kinds.items():
            labels: dict[str, Any] | None = None if kind == KIND else {LABEL_MANAGED_BY: MANAGER}
            fresh: list[Body] = []
            for namespace in namespaces or ("*",):
                fresh += await self.writes.list(resource, kind, namespace, labels)
            if kind == KIND:
                for gone in self.caches.replace_models(fresh):
                    self._forget(gone)
            else:
                self.caches.replace_owned(kind, fresh)
        self._built.clear()
        for key in self.caches.models:
            self.queue.add(key)

    async def resync(self, namespaces: tuple[str, ...] = ()) -> None:
        """``sync`` every RESYNC_SECONDS."""
        while True:
            await asyncio.sleep(RESYNC_SECONDS)
            try:
                await self.sync(namespaces)
            except Exception:
                log.exception("resync failed; the watches go on")

    async def tick(self) -> None:
        """Queue the Models whose next decision time alone makes due (a rollout step ending,
        its analysis, an SLO to measure again); everything else changes only when the cluster
        does."""
        while True:
            await asyncio.sleep(TICK_SECONDS)
            for key, body in list(self.caches.models.items()):
                rollout = (body.get("status") or {}).get("rollout") or {}
                if rollout.get("phase") == RolloutPhase.PROGRESSING.value or (
                    self.slo.source is not None and has_slo(body) and self.slo.due(key)
                ):
                    self.queue.add(key)

    async def scale(self) -> None:
        """Queue autoscaled Models as their demand moves (``demand.ClusterDemand``)."""
        await self.demand.watch()

    async def work(self) -> None:
        await self.queue.work(self._safely)

    async def _safely(self, key: str) -> None:
        self.telemetry.queue_depth.set(len(self.queue))
        started = time.perf_counter()
        outcome, retry_in = "success", 0.0
        try:
            await self.reconcile(key)
        except ModelplaneError as exc:
            if exc.retry_after is not None:
                log.warning("reconciling %s: %s; retrying", key, exc)
                outcome, retry_in = "error", max(exc.retry_after, RETRY_SECONDS)
            else:
                # The server refuses what the Model asks for (an invalid child, say): that will
                # not pass by retrying at once. Say so on status and look again later.
                outcome, retry_in = "refused", PERMANENT_RETRY_SECONDS
                await self._refuse(key, exc)
        except Exception:  # one Model's trouble must not stop the others: retry it later
            log.exception("reconciling %s failed; retrying", key)
            outcome, retry_in = "error", RETRY_SECONDS
        self.telemetry.reconciles.labels(outcome).inc()
        self.telemetry.reconcile_duration.observe(time.perf_counter() - started)
        if retry_in:
            asyncio.get_running_loop().call_later(retry_in, self.queue.add, key)

    async def _refuse(self, key: str, error: ModelplaneError) -> None:
        body = self.caches.models.get(key)
        if body is None:
            return
        log.warning("reconciling %s: refused: %s", key, error)
        try:
            await self._refused(body, "ChildRefused", str(error))
        except ModelplaneError:
            log.exception("status of %s not written", key)

    # -- reconcile ---------------------------------------------------------------------------

    async def reconcile(self, key: str) -> None:
        body = self.caches.models.get(key)
        if body is None or body["metadata"].get("deletionTimestamp"):
            self.usage.observe(key, ())  # its replicas count no more
            return  # owner references collect the children
        try:
            model = model_from(body)
        except SpecError as exc:
            await self._invalid(body, exc)
            return
        now = self.clock()
        stored = self._stored_revisions(model)
        newest = stored[-1].ref.name if stored else None
        url = f"{self.settings.gateway_url}{model.gateway_path(explicit_namespace=True)}"
        refs = tuple(r.ref for r in stored)
        source, unresolved = await self.pins.observe(model, refs)
        evaluated, verdict = self.gates.observe(model, *self._gate_urls(model))
        observed = Observed(
            revisions=refs,
            replicas=tuple(replica_view(p) for p in self.caches.owned("Pod", key).values()),
            demand=self.demand.of(key, newest, now, model.spec.scaling),
            cap=self.replica_quotas.cap(
                model.metadata.namespace,
                lambda: self.caches.namespace_models(model.metadata.namespace),
            ),
            windows=await rollout_windows(self.metrics, model, newest, now),
            reported=self._reported.get(key) or reported_from(model.status),
            url=url,
            source=source,
            unresolved=unresolved,
            evaluated=evaluated,
            evaluation=verdict,
            slo=await self.slo.observe(model, now),
            adapter_failures=self.load.failed_adapters(key),
        )
        self.usage.observe(key, _usage_of(model, stored, observed.replicas))
        decided = plan(model, observed, now)
        self.replica_quotas.claim(model.metadata.namespace, key, decided.wanted)
        self.demand.decided(key, model.spec.scaling, decided.wanted, observed.demand)
        specs = {r.ref.name: r for r in stored}
        if decided.new_revision:
            specs[decided.revision.name] = await self._record_revision(
                model, decided.revision, decided.source
            )
        await self._apply_children(model, decided.plan, specs, decided.revision.name)
        await self._record_marks(model, decided.marks)
        await self._record_incidents(model, decided.incidents)
        await self._report(model, decided)
        retry_in = self.pins.retry_in(model)
        if retry_in is not None:  # the store could not say what the tag or alias names: ask again
            asyncio.get_running_loop().call_later(retry_in, self.queue.add, key)

    def _requeue_namespace(self, namespace: str) -> None:
        for key in self.caches.in_namespace(namespace):
            self.queue.add(key)

    def _gate_urls(self, model: Model) -> tuple[str | None, str | None]:
        """A ready pod of the canary the evaluation gate waits on, and of the stable revision,
        by pod IP: the gate reaches the replica itself, not the gateway that routes clients."""
        due = evaluation_due(model)
        if due is None:
            return None, None
        pods = self.caches.owned("Pod", model.key).values()
        found = {name: ready_pod_url(pods, name) for name in (due, model.status.stable_revision)}
        return found[due], found.get(model.status.stable_revision)

    def _stored_revisions(self, model: Model) -> list[StoredRevision]:
        stored = [stored_revision(b) for b in self.caches.children("ControllerRevision", model)]
        return sorted(stored, key=lambda r: r.ref.number)

    async def _record_revision(
        self, model: Model, chosen: RevisionRef, source: Source
    ) -> StoredRevision:
        manifest = children.controller_revision(model, chosen.number, chosen.digest, source)
        try:
            body = await self.writes.create(manifest)
        except KubernetesError as exc:
            if exc.code == 409:  # made by a pass that crashed before its watch event
                raise CacheBehindError(f"{chosen.name} of {model.key} exists already") from exc
            raise
        self.caches.kept("ControllerRevision", model.key, body)
        return stored_revision(body)

    async def _apply_children(
        self, model: Model, plan: Plan, revisions: dict[str, StoredRevision], latest: str
    ) -> None:
        wanted: list[Body] = []
        told = await self._adapters_told(model, [revisions[name].spec for name in plan.replicas])
        if told is not None:  # before the pods that mount it: none starts on a stale list
            wanted.append(told)
        pools = self.inference_pools and children.pooled(model.spec)
        for revision, count in plan.replicas.items():
            wanted += [
                self._deployment(model, revisions[revision], count),
                children.service(model, revision),
                children.disruption_budget(model, revision),
            ]
            if pools:
                wanted.append(children.inference_pool(model, revision, self.settings))
        if self.gateway_api:
            traffic = {name: weight for name, weight in plan.traffic.items() if weight}
            route = children.http_route(model, traffic or {latest: 100}, self.settings, pools)
            wanted.append(route)
        for manifest in wanted:
            await self._apply(model, manifest)
        for kind in PER_REVISION:
            for live in self.caches.children(kind, model):
                revision = live["metadata"]["labels"].get(LABEL_REVISION)
                kept = revision in plan.replicas and (pools or kind != "InferencePool")
                if not kept and not live["metadata"].get("deletionTimestamp"):
                    await self._delete(model, kind, live["metadata"]["name"])

    async def _adapters_told(self, model: Model, running: list[ModelSpec]) -> Body | None:
        """The ConfigMap telling the Model's pods its adapters, while its spec or a revision
        that runs serves them; one no longer wanted is deleted."""
        if serves_adapters(model.spec) or any(serves_adapters(spec) for spec in running):
            return children.adapters_config_map(model)
        for live in self.caches.children("ConfigMap", model):
            if not live["metadata"].get("deletionTimestamp"):
                await self._delete(model, "ConfigMap", live["metadata"]["name"])
        return None

    def _deployment(self, model: Model, revision: StoredRevision, replicas: int) -> Body:
        key = (model.metadata.uid, revision.ref.name, replicas)
        built = self._built.get(key)
        if built is None:
            if len(self._built) > BUILT_CACHE:
                self._built.clear()
            built = self._built[key] = children.deployment(
                model, revision.ref.name, revision.spec, replicas, self.settings
            )
        return built

    async def _apply(self, model: Model, manifest: Body) -> None:
        kind, name = manifest["kind"], manifest["metadata"]["name"]
        live = self.caches.owned(kind, model.key).get(name)
        if live is not None and children.converged(live, manifest):
            return
        applied = await self.writes.apply(RESOURCES[kind], manifest, model.metadata.namespace)
        self.caches.kept(kind, model.key, applied)

    async def _delete(self, model: Model, kind: str, name: str) -> None:
        await self.writes.delete(RESOURCES[kind], kind, name, model.metadata.namespace)
        self.caches.dropped(kind, model.key, name)

    async def _record_marks(self, model: Model, marks: Sequence[Mark]) -> None:
        """Release milestones onto their revisions, before the status that shows them."""
        revisions = self.caches.owned("ControllerRevision", model.key)
        await self._annotate_revisions(model, {
            name: new_annotations([m for m in marks if m.revision == name], live)
            for name in dict.fromkeys(m.revision for m in marks)
            if (live := revisions.get(name)) is not None
        })  # fmt: skip

    async def _record_incidents(self, model: Model, incidents: Sequence[Incident]) -> None:
        """An SLO breach beginning or ending, onto the revisions, before the status says so."""
        if incidents:
            revisions = self.caches.owned("ControllerRevision", model.key)
            await self._annotate_revisions(model, incident_annotations(incidents, revisions))

    async def _annotate_revisions(self, model: Model, changes: dict[str, dict[str, str]]) -> None:
        for name, added in changes.items():
            if not added:
                continue
            patched = await self.writes.annotate(
                ControllerRevision, "ControllerRevision", name, model.metadata.namespace, added
            )
            self.caches.kept("ControllerRevision", model.key, patched)

    async def _report(self, model: Model, decided: ModelPlan) -> None:
        # Status first: a crash between the two then loses an event, never repeats a decision.
        await self._write_status(model.metadata, model.status, decided.plan.status)
        self._reported[model.key] = decided.reported
        for event in decided.events:
            await self.writes.event(model, event, self.clock())

    async def _write_status(
        self, meta: ObjectMeta, before: ModelStatus, status: ModelStatus
    ) -> None:
        wire = status_wire(status)
        if wire == status_wire(before):
            return
        applied = await self.writes.apply_status(ModelResource.Status, meta, wire)
        key = f"{meta.namespace}/{meta.name}"
        if key in self.caches.models:  # the next pass starts from what was written
            self.caches.models[key] = applied

    async def _invalid(self, body: Body, error: SpecError) -> None:
        """A spec the API server took but the types refuse: say why on status, touch nothing."""
        message = str(error)
        if error.problems:
            message += ": " + "; ".join(str(p) for p in error.problems)
        await self._refused(body, "InvalidSpec", message)

    async def _refused(self, body: Body, reason: str, message: str) -> None:
        """Not Ready, Stalled, for ``reason``: what was already running keeps running."""
        meta = meta_of(body)
        try:
            before = ModelStatus.model_validate(body.get("status") or {})
        except ValueError:
            before = ModelStatus()
        status = refused(before, meta.generation, reason, message, self.clock())
        await self._write_status(meta, before, status)


def _usage_of(
    model: Model, stored: Sequence[StoredRevision], replicas: Iterable[ReplicaView]
) -> list[ReplicaUsage]:
    """Each pod of ``model`` for its usage: what its revision requested, and whether it counts."""
    requested = {r.ref.name: Requested.of(r.spec.resources) for r in stored}
    default, namespace = Requested.of(model.spec.resources), model.metadata.namespace
    return [
        (f"{namespace}/{v.id}", v.revision, requested.get(v.revision, default), v.phase in COUNTED)
        for v in replicas
    ]
