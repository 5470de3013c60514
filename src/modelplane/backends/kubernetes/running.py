"""``modelplane operator``: kopf watches the cluster, the reconciler decides and writes.

kopf brings watching with reconnection and resumption, logins from a kubeconfig or a service
account, and a liveness endpoint; its handlers here only feed the watch caches and queue work.
No kopf state is written to any object (no finalizers, no annotations), so a converged cluster
sees no writes at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import kopf
import uvicorn
from lightkube import ApiError, AsyncClient
from lightkube.resources.apiextensions_v1 import CustomResourceDefinition
from lightkube.resources.core_v1 import Namespace
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from modelplane.api import GROUP, KIND, VERSION
from modelplane.backends.kubernetes.children import (
    ALL_INTERFACES,
    LABEL_MANAGED_BY,
    MANAGER,
    ClusterSettings,
)
from modelplane.backends.kubernetes.connecting import connected
from modelplane.backends.kubernetes.following import follow
from modelplane.backends.kubernetes.leadership import (
    Leadership,
    LeaseTiming,
    default_identity,
    default_namespace,
)
from modelplane.backends.kubernetes.load import LOAD_PATH, LoadBoard
from modelplane.backends.kubernetes.operator import Operator
from modelplane.backends.prometheus import PrometheusSource
from modelplane.backends.prometheus_slo import PrometheusSLOSource
from modelplane.processes import cancel_all
from modelplane.telemetry.operator_metrics import OperatorMetrics

log = logging.getLogger(__name__)

MANAGED = {LABEL_MANAGED_BY: MANAGER}
# (group, version, plural, kind, label filter) of everything the reconciler reads.
Watch = tuple[str, str, str, str, dict[str, str] | None]
WATCHES: list[Watch] = [
    (GROUP, VERSION, "models", KIND, None),
    ("apps", "v1", "controllerrevisions", "ControllerRevision", MANAGED),
    ("apps", "v1", "deployments", "Deployment", MANAGED),
    ("", "v1", "services", "Service", MANAGED),
    ("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", MANAGED),
    ("", "v1", "pods", "Pod", MANAGED),
    ("", "v1", "configmaps", "ConfigMap", MANAGED),
]
HTTPROUTE_WATCH: Watch = ("gateway.networking.k8s.io", "v1", "httproutes", "HTTPRoute", MANAGED)
HTTPROUTE_CRD = "httproutes.gateway.networking.k8s.io"
POOL_WATCH: Watch = (
    "inference.networking.k8s.io",
    "v1",
    "inferencepools",
    "InferencePool",
    MANAGED,
)
POOL_CRD = "inferencepools.inference.networking.k8s.io"
NAMESPACES_WAIT_SECONDS = 30.0
# Waits between kopf's attempts at a failed list or watch: short, and never given up.
FIRST_BACKOFFS = (1.0, 1.0, 2.0, 3.0)
MAX_BACKOFF = 5.0


@dataclass(frozen=True)
class Election:
    """Which Lease the operator replicas contend for, and as whom."""

    namespace: str = field(default_factory=default_namespace)
    identity: str = field(default_factory=default_identity)
    timing: LeaseTiming = field(default_factory=LeaseTiming)


@dataclass(frozen=True)
class OperatorOptions:
    cluster: ClusterSettings = field(default_factory=ClusterSettings)
    namespaces: tuple[str, ...] = ()  # none: the whole cluster
    prometheus: str | None = None
    workers: int = 8
    liveness: str | None = "http://0.0.0.0:8081/healthz"
    # The operator's /metrics, and where gateways send their load; None: not served.
    metrics_port: int | None = 8080
    election: Election | None = None  # None: no leader election, this process always writes


async def run(options: OperatorOptions, stop: asyncio.Event | None = None) -> None:
    async with connected(MANAGER) as client:
        telemetry, board = OperatorMetrics(), LoadBoard()
        # Served while a replica waits for the lease too: it is alive, and says so.
        served = (
            await _serve(options.metrics_port, telemetry, board)
            if options.metrics_port is not None
            else None
        )
        try:
            leadership = None
            if options.election is not None:
                election = options.election
                leadership = Leadership(
                    client, election.namespace, election.identity, telemetry.registry,
                    election.timing,
                )  # fmt: skip
                await leadership.acquire()
            await _operate(client, options, telemetry, board, leadership, stop)
        finally:
            if served is not None:
                server, serving = served
                server.should_exit = True
                await serving


async def _operate(
    client: AsyncClient,
    options: OperatorOptions,
    telemetry: OperatorMetrics,
    board: LoadBoard,
    leadership: Leadership | None,
    stop: asyncio.Event | None,
) -> None:
    """Watch and reconcile until stopped, or until the lease is lost (then raise)."""
    gateway_api = await _has_crd(client, HTTPROUTE_CRD)
    pools = await _has_crd(client, POOL_CRD)
    metrics = PrometheusSource(options.prometheus) if options.prometheus else None
    counted = PrometheusSLOSource(options.prometheus) if options.prometheus else None
    operator = Operator(
        client, options.cluster, metrics, gateway_api, telemetry, load=board, slo=counted,
        leading=leadership, inference_pools=pools,
    )  # fmt: skip
    registry = _registry(operator, [*WATCHES, *([HTTPROUTE_WATCH] if gateway_api else []),
                                    *([POOL_WATCH] if pools else [])])  # fmt: skip
    settings = kopf.OperatorSettings()
    settings.posting.enabled = False  # events are the reconciler's to write
    settings.watching.server_timeout = 300
    settings.networking.error_backoffs = _Backoffs()
    settings.scanning.disabled = True  # no watching of CRDs and namespaces: RBAC keeps it out
    settings.persistence.diffbase_storage = _NoDiffBase()
    stop = stop or asyncio.Event()
    keeping = asyncio.create_task(_keep(leadership, stop))
    loop_tasks = [keeping]
    try:
        await operator.sync(options.namespaces)
        # Tenants' replica quotas are on their Namespaces: known before the first pass.
        listed = asyncio.Event()
        loop_tasks.append(asyncio.create_task(
            follow(client, Namespace, None, None, operator.replica_quotas.replace_namespaces,
                   operator.replica_quotas.observe_namespace, listed)
        ))  # fmt: skip
        with contextlib.suppress(TimeoutError):  # not listable (RBAC): the follow says why
            await asyncio.wait_for(listed.wait(), NAMESPACES_WAIT_SECONDS)
        loop_tasks += [asyncio.create_task(operator.work()) for _ in range(options.workers)]
        loop_tasks.append(asyncio.create_task(operator.tick()))
        loop_tasks.append(asyncio.create_task(operator.scale()))
        loop_tasks.append(asyncio.create_task(operator.resync(options.namespaces)))
        log.info(
            "operator started: gateway API %s, inference extension %s",
            *("found" if found else "not installed" for found in (gateway_api, pools)),
        )
        if not stop.is_set():
            await kopf.operator(
                registry=registry,
                settings=settings,
                standalone=True,
                clusterwide=not options.namespaces,
                namespaces=list(options.namespaces),
                liveness_endpoint=options.liveness,
                stop_flag=stop,
            )
    finally:
        lost = keeping.done() and leadership is not None
        await cancel_all(loop_tasks)
        if metrics is not None:
            await metrics.close()
    if leadership is not None:
        if lost:
            raise leadership.lost(operator.writes.made)
        await leadership.release()


async def _keep(leadership: Leadership | None, stop: asyncio.Event) -> None:
    """Hold the lease while the operator runs; stop the operator the moment it is lost."""
    if leadership is None:
        await asyncio.Event().wait()  # nothing to keep: wait to be cancelled
        return
    try:
        await leadership.keep()
    finally:
        stop.set()


class _Server(uvicorn.Server):
    """kopf handles the signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def _serve(
    port: int, telemetry: OperatorMetrics, board: LoadBoard
) -> tuple[uvicorn.Server, asyncio.Task[None]]:
    """The operator's HTTP port: its Prometheus ``/metrics``, ``/healthz`` (for the probes, on
    the replica waiting for the lease too), and the gateways' load reports."""

    async def metrics(_: Request) -> Response:
        return Response(generate_latest(telemetry.registry), media_type=CONTENT_TYPE_LATEST)

    app = Starlette(
        routes=[
            Route("/metrics", metrics),
            Route("/healthz", lambda _: Response("ok")),  # the loop answers: alive, leading or not
            Route(LOAD_PATH, board.receive, methods=["POST"]),
        ]
    )
    config = uvicorn.Config(
        app, host=ALL_INTERFACES, port=port, log_level="warning", access_log=False, log_config=None
    )
    server = _Server(config)
    serving = asyncio.create_task(server.serve())
    while not server.started:
        if serving.done():
            serving.result()  # the port is taken: uvicorn said why
            raise OSError(f"the operator's port {port} could not be served")
        await asyncio.sleep(0.02)
    return server, serving


class _Backoffs(Iterable[float]):
    """kopf's own backoffs grow to 21 s and end after 54 s: a watch then reconnected up to 21 s
    after the API server was back, and one whose server kept answering 5xx (its etcd down)
    past the last attempt was never restarted. Here the waits stop growing at MAX_BACKOFF and
    never end, so a watch outlasts any outage and resumes within seconds of its end. Iterated
    afresh for every request."""

    def __iter__(self) -> Iterator[float]:
        return itertools.chain(FIRST_BACKOFFS, itertools.repeat(MAX_BACKOFF))


class _NoDiffBase(kopf.DiffBaseStorage):
    """Event handlers only, so nothing is ever diffed: kopf's default deep-copies every object
    of every watch event to build a diff base, a fifth of the operator's CPU under load."""

    def build(self, **_: Any) -> kopf.BodyEssence:
        return kopf.BodyEssence()

    def fetch(self, **_: Any) -> kopf.BodyEssence | None:
        return None

    def store(self, **_: Any) -> None:
        return None


def _registry(operator: Operator, watches: list[Watch]) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()
    kopf.on.login(registry=registry)(_login)
    for group, version, plural, kind, labels in watches:
        kopf.on.event(
            group, version, plural, labels=labels, registry=registry, id=f"observe-{plural}"
        )(_observer(operator, kind))
    return registry


def _observer(operator: Operator, kind: str) -> Any:
    async def observe(event: kopf.RawEvent, **_: Any) -> None:
        operator.observe(kind, event.get("type"), dict(event["object"]))

    return observe


def _login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)


async def _has_crd(client: AsyncClient, name: str) -> bool:
    """Whether the CRD ``name`` is installed (and the operator may read it)."""
    try:
        await client.get(CustomResourceDefinition, name)
    except ApiError as exc:
        if exc.status.code in (403, 404):
            return False
        raise
    return True
