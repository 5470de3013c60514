"""The embedded platform, wired: the composition ``modelplane up`` serves. ``Platform`` builds
the store, the control API, the controller with its replica supervisor and the gateway on one
event loop, serves them until a signal, and closes them in the order that lets each part finish
with the others still there."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import signal
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import typer
import uvicorn
from starlette.types import ASGIApp

from modelplane.api import SLO, load_model_file
from modelplane.apiserver.access import AccessControl
from modelplane.apiserver.key_store import SqliteKeyStore, first_admin_key
from modelplane.apiserver.metric_history import KEPT_POINTS, MetricHistory
from modelplane.apiserver.prometheus_series import PrometheusSeries
from modelplane.apiserver.quotas import SqliteQuotaStore
from modelplane.apiserver.routes import control_routes
from modelplane.apiserver.server import ControlApi
from modelplane.backends.local.backup import DATABASE, write_backup
from modelplane.backends.local.controller import Controller
from modelplane.backends.local.metric_source import GatewayMetricSource
from modelplane.backends.local.prometheus_beside import PrometheusBeside, Scraping
from modelplane.backends.local.scrape_targets import TargetsFile, targets
from modelplane.backends.local.slo_source import GatewaySLOSource
from modelplane.backends.local.store import SqliteStore
from modelplane.backends.local.supervisor import Supervisor
from modelplane.backends.local.usage import UsageRecorder, UsageStore
from modelplane.backends.prometheus import PrometheusSource
from modelplane.backends.prometheus_slo import PrometheusSLOSource
from modelplane.backends.release_metrics import ReleaseCollector
from modelplane.backends.slo_metrics import SLOCollector
from modelplane.backends.slo_readings import SLOReadings
from modelplane.backends.usage_metrics import UsageCollector
from modelplane.connections import KEEP_ALIVE_SECONDS, DataPlaneProtocol
from modelplane.control.analysis import MetricSource
from modelplane.control.slo import SLOSource
from modelplane.errors import AlreadyExistsError
from modelplane.gateway.proxy import Gateway, GatewayOptions
from modelplane.gateway.routing import RoutingTable
from modelplane.gitops.sources import GitSources
from modelplane.gitops.sync import GitSourceSpec
from modelplane.portal import PortalOrigin, portal_routes
from modelplane.processes import cancel_all
from modelplane.security.authn import Authenticator
from modelplane.security.tokens import TokenVerifier
from modelplane.telemetry.access import AccessLogSettings, logged
from modelplane.telemetry.gateway_metrics import GatewayMetrics

log = logging.getLogger(__name__)

CONTROL_BACKLOG = 2048  # uvicorn's default
GATEWAY_BACKLOG = 4096  # bursts of clients at the gateway wait in the kernel, not refused


class _Server(uvicorn.Server):
    """The platform handles signals itself, once for both servers."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass(frozen=True)
class Settings:
    host: str
    port: int
    gateway_port: int
    state_dir: Path
    examples: bool
    log_level: str
    log_format: str
    access_log: AccessLogSettings  # the gateway's and the replicas'
    gateway: GatewayOptions
    prometheus: str | None  # a Prometheus of the user's, for analysis and charts
    scraping: Scraping
    source: GitSourceSpec | None
    auth: bool
    oidc: TokenVerifier | None
    serve_options: tuple[str, ...] = ()  # more `modelplane serve` options for every replica

    @property
    def api_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def gateway_address(self) -> str:
        return f"{self.host}:{self.gateway_port}"


async def run(settings: Settings, sockets: list[list[socket.socket]]) -> None:
    """Serve on ``sockets``, bound already: the control API's, then the gateway's."""
    beside = await settings.scraping.start(settings.state_dir, settings.gateway_address)
    try:
        platform = Platform(settings, beside, sockets)
    except BaseException:  # a store that cannot open, say: the Prometheus beside goes too
        if beside is not None:
            await beside.stop()
        raise
    try:
        await platform.serve()
    finally:
        await platform.close()
    if not platform.served_cleanly():
        raise typer.Exit(1)


class Platform:
    """The parts of the embedded platform, wired: built here, served until a signal, closed in
    the order that lets each part finish with the others still there."""

    def __init__(
        self,
        settings: Settings,
        beside: PrometheusBeside | None,
        sockets: list[list[socket.socket]],
    ) -> None:
        self.settings, self.beside, self.sockets = settings, beside, sockets
        state_dir = settings.state_dir
        self.store = SqliteStore(state_dir / DATABASE)
        self.keys = SqliteKeyStore(state_dir / DATABASE) if settings.auth else None
        self.admin_key = state_dir / "admin.key"
        self.made_admin_key = self.keys is not None and first_admin_key(self.keys, self.admin_key)
        system_token = secrets.token_urlsafe(32)
        authenticator = Authenticator(self.keys, system_token, settings.oidc)
        table = RoutingTable()
        gateway_metrics = GatewayMetrics()
        # Release figures are scraped with the gateway's: one target for the whole platform.
        gateway_metrics.registry.register(ReleaseCollector(self.store.release_history))
        gateway_metrics.registry.register(SLOCollector(self._objectives))
        # Each team's usage: replicas' phases and finished requests, flushed every interval.
        self.usage = usage = UsageRecorder(UsageStore(state_dir / DATABASE))
        gateway_metrics.registry.register(UsageCollector(usage.totals))
        self.gateway = gateway = Gateway(
            table, gateway_metrics, settings.gateway, authenticator=authenticator
        )
        gateway.on_answered = usage.answered
        self.supervisor = Supervisor(
            state_dir, base_dir=Path.cwd(), log_format=settings.log_format,
            access_log=settings.access_log, serve_options=settings.serve_options,
            on_phase=usage.replica,
        )  # fmt: skip
        prometheus = beside.url if beside is not None else settings.prometheus
        self.scraped = PrometheusSource(prometheus) if prometheus else None
        metrics: MetricSource = self.scraped or GatewayMetricSource(gateway.reading)
        self.slo_counts = PrometheusSLOSource(prometheus) if prometheus else None
        counted: SLOSource = self.slo_counts or GatewaySLOSource(gateway.served, datetime.now(UTC))
        self.controller = controller = Controller(
            self.store, self.supervisor, table, gateway, metrics, state_dir,
            f"http://{settings.gateway_address}", replica_limit=gateway.quotas.max_replicas,
            slo=SLOReadings(counted, ""),
        )  # fmt: skip
        # Demand, replica changes and writes all wake the controller at once.
        gateway.on_demand = controller.demand
        self.supervisor.on_change = controller.replicas_changed
        self.store.on_change(controller.wake)
        self.sources = GitSources(state_dir, settings.api_url, self.store.record_event,
                                  {"Authorization": f"Bearer {system_token}"})  # fmt: skip
        self.quotas = SqliteQuotaStore(state_dir / DATABASE)
        self.history = history = MetricHistory(gateway.reading, gateway.in_flight)
        span = history.interval * KEPT_POINTS
        self.series = PrometheusSeries(prometheus, history.interval, span) if prometheus else None
        routes = control_routes(self.store, history, self.sources, self.quotas, gateway.quotas,
                                self.keys, partial(write_backup, state_dir), usage,
                                self.series)  # fmt: skip
        control: ASGIApp = ControlApi(self.store, state_dir / "logs").app(
            [*routes, *portal_routes(settings.gateway_port)]
        )
        if self.keys is not None:
            control = AccessControl(control, authenticator)
        self.servers = self._servers(control)
        self._tasks: list[asyncio.Task[None]] = []
        self._background: list[asyncio.Task[None]] = []

    def _objectives(self) -> list[tuple[str, SLO]]:
        models, _ = self.store.list_models()
        return [(m.key, m.spec.slo) for m in models if m.spec.slo is not None]

    def _servers(self, control: ASGIApp) -> list[_Server]:
        settings = self.settings
        return [
            _Server(
                uvicorn.Config(
                    control, host=settings.host, port=settings.port,
                    log_level=settings.log_level, access_log=False, log_config=None,
                    backlog=CONTROL_BACKLOG,
                )
            ),
            _Server(
                uvicorn.Config(
                    logged(PortalOrigin(self.gateway, settings.port), settings.access_log),
                    host=settings.host,
                    port=settings.gateway_port, http=DataPlaneProtocol,
                    timeout_keep_alive=KEEP_ALIVE_SECONDS, log_level=settings.log_level,
                    access_log=False, log_config=None, proxy_headers=False, lifespan="on",
                    backlog=GATEWAY_BACKLOG,
                )
            ),
        ]  # fmt: skip

    async def serve(self) -> None:
        """Serve until SIGINT or SIGTERM, or until a server fails (its startup, say: uvicorn
        logs why)."""
        if self.settings.source is not None:
            self.sources.add(self.settings.source, replace=True)
        if self.settings.examples:
            _apply_examples(self.store)
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        self._tasks = [
            loop.create_task(server.serve(sockets))
            for server, sockets in zip(self.servers, self.sockets, strict=True)
        ]
        self._background = [
            loop.create_task(self.controller.run()),
            loop.create_task(self.controller.reports.run()),
            loop.create_task(self.history.run(self.store)),
            loop.create_task(self.usage.run()),
        ]
        self.sources.start()
        if self.settings.scraping.enabled:
            self._publish_scrape_targets()
        while not all(s.started for s in self.servers):
            if any(t.done() for t in self._tasks):
                return
            await asyncio.sleep(0.05)
        self._banner()
        await asyncio.wait(
            [loop.create_task(stop.wait()), *self._tasks], return_when=asyncio.FIRST_COMPLETED
        )

    def served_cleanly(self) -> bool:
        failed = [t for t in self._tasks if t.done() and not t.cancelled() and t.exception()]
        return all(s.started for s in self.servers) and not failed

    def _publish_scrape_targets(self) -> None:
        """Keep the file_sd targets current: the gateway and every replica as they change."""
        targets_file = TargetsFile(self.settings.scraping.targets)

        def publish() -> None:
            addresses = self.supervisor.ready_addresses()
            targets_file.update(targets(self.settings.gateway_address, addresses))

        def replicas_changed() -> None:
            self.controller.replicas_changed()
            publish()

        publish()
        self.supervisor.on_change = replicas_changed

    def _banner(self) -> None:
        api_url = self.settings.api_url
        lines = [
            "modelplane is up",
            f"  portal       {api_url}/",
            f"  control API  {api_url}",
            f"  gateway      http://{self.settings.gateway_address}",
        ]
        if self.beside is not None:
            lines.append(f"  prometheus   {self.beside.url}")
        if self.keys is None:
            lines.append("  auth         off: anyone who reaches these ports may deploy")
        else:
            made = " (made now)" if self.made_admin_key else ""
            lines.append(
                f"  auth         API keys; the first admin key is in {self.admin_key}{made}"
            )
        lines += [f"  state        {self.settings.state_dir}", "Press Ctrl-C to stop."]
        print("\n".join(lines), flush=True)

    async def close(self) -> None:
        for server in self.servers:
            server.should_exit = True
        await cancel_all(self._background)
        await self.sources.close()
        await self.supervisor.close()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.gateway.close()
        self._record_usage()
        for client in (self.scraped, self.series, self.slo_counts):
            if client is not None:
                await client.close()
        if self.beside is not None:
            await self.beside.stop()
        self.store.close()
        self.usage.store.close()
        self.quotas.close()
        if self.keys is not None:
            self.keys.close()

    def _record_usage(self) -> None:
        """The last interval's usage, with every replica stopped and every request answered."""
        try:
            self.usage.flush()
        except Exception:
            log.exception("the last interval's usage could not be recorded")


def _apply_examples(store: SqliteStore) -> None:
    for manifest in sorted(Path("examples").glob("*/*.yaml")):
        for model in load_model_file(manifest):
            with contextlib.suppress(AlreadyExistsError):
                store.create(model)
                print(f"applied example {model.key} from {manifest}", flush=True)
