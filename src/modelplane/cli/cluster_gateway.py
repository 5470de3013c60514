"""``modelplane gateway``: the modelplane gateway in a cluster.

The same proxy as embedded mode (weighted revisions, holds during cold starts, retries,
ejection, shadow traffic), with its routes from the Kubernetes API (``discovery``), its
tenants' quotas from their Namespaces (``tenant_quotas``) and its load sent to the operator,
which scales on it (``load``). Ready once every watch has listed.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from dataclasses import dataclass, field

import uvicorn

from modelplane.backends.kubernetes.connecting import connected
from modelplane.backends.kubernetes.discovery import Discovery
from modelplane.backends.kubernetes.load import LoadReporter
from modelplane.backends.kubernetes.tenant_quotas import TenantQuotas
from modelplane.backends.usage_metrics import UsageCollector
from modelplane.backends.usage_tally import UsageTally
from modelplane.connections import KEEP_ALIVE_SECONDS, DataPlaneProtocol
from modelplane.gateway.proxy import Gateway, GatewayOptions
from modelplane.gateway.routing import RoutingTable
from modelplane.processes import cancel_all
from modelplane.security.authn import Authenticator
from modelplane.telemetry.access import AccessLogSettings, logged
from modelplane.telemetry.gateway_metrics import GatewayMetrics

log = logging.getLogger(__name__)

FIELD_MANAGER = "modelplane-gateway"


@dataclass(frozen=True)
class ClusterGatewayOptions:
    host: str = "0.0.0.0"  # noqa: S104 - in a pod, the Service reaches it on the pod's address
    port: int = 8080
    namespaces: tuple[str, ...] = ()  # none: the whole cluster
    report_to: str | None = "http://modelplane-operator.modelplane-system.svc:8080/v1/load"
    name: str = field(default_factory=socket.gethostname)  # the pod's name, in a pod
    proxy: GatewayOptions = field(default_factory=GatewayOptions)
    log_level: str = "warning"
    authenticator: Authenticator | None = None  # None: whoever reaches it is served
    # The Service in front of every gateway, "name" (in this pod's namespace) or
    # "namespace/name": each gateway enforces its share of the quotas. "": this one alone.
    peers: str = "modelplane-gateway"
    access_log: AccessLogSettings = field(default_factory=AccessLogSettings)


async def run(options: ClusterGatewayOptions) -> None:
    async with connected(FIELD_MANAGER) as client:
        table = RoutingTable()
        metrics = GatewayMetrics()
        gateway = Gateway(table, metrics, options.proxy, authenticator=options.authenticator)
        # Each team's requests and tokens, counted since this gateway started; Prometheus
        # keeps the history (the operator counts the replicas' time).
        usage = UsageTally()
        gateway.on_answered = usage.answered
        metrics.registry.register(UsageCollector(usage.totals))
        discovery = Discovery(client, table, options.namespaces)
        quotas = TenantQuotas(client, gateway.quotas, _peers(options.peers, client.namespace))
        gateway.is_ready = lambda: discovery.ready.is_set() and quotas.ready.is_set()
        tasks = [asyncio.create_task(discovery.run()), asyncio.create_task(quotas.run())]
        if options.report_to:
            reporter = LoadReporter(gateway.load, options.report_to, options.name)
            gateway.on_demand = lambda key: reporter.poke()
            tasks.append(asyncio.create_task(reporter.run()))
        server = uvicorn.Server(
            uvicorn.Config(
                logged(gateway, options.access_log), host=options.host, port=options.port,
                http=DataPlaneProtocol, timeout_keep_alive=KEEP_ALIVE_SECONDS,
                log_level=options.log_level, access_log=False, log_config=None,
                proxy_headers=False, lifespan="on", backlog=4096,
            )
        )  # fmt: skip
        log.info("gateway on %s:%d, load to %s", options.host, options.port, options.report_to)
        try:
            await server.serve()  # until SIGTERM or SIGINT
        finally:
            await cancel_all(tasks)


def _peers(service: str, own_namespace: str) -> tuple[str, str] | None:
    if not service:
        return None
    namespace, _, name = service.rpartition("/")
    return namespace or own_namespace, name
