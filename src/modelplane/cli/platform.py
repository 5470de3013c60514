"""``modelplane up``: the embedded platform in one process.

Composes the store, the control API, the controller with its replica supervisor, and the gateway
on one event loop; replicas are child processes. Ctrl-C (or SIGTERM) stops accepting, drains the
replicas and exits; state stays in the state directory for the next ``up``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import secrets
import signal
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
import uvicorn
import uvloop
from pydantic import ValidationError
from starlette.types import ASGIApp

from modelplane.api import load_model_file
from modelplane.api.manifests import problems_from
from modelplane.apiserver.access import AccessControl
from modelplane.apiserver.key_store import SqliteKeyStore, first_admin_key
from modelplane.apiserver.metric_history import KEPT_POINTS, MetricHistory
from modelplane.apiserver.prometheus_series import PrometheusSeries
from modelplane.apiserver.quotas import SqliteQuotaStore
from modelplane.apiserver.routes import control_routes
from modelplane.apiserver.server import ControlApi
from modelplane.backends.local.controller import Controller
from modelplane.backends.local.metric_source import GatewayMetricSource
from modelplane.backends.local.prometheus_beside import PrometheusBeside, Scraping
from modelplane.backends.local.scrape_targets import TargetsFile, targets
from modelplane.backends.local.store import SqliteStore
from modelplane.backends.local.supervisor import Supervisor
from modelplane.backends.prometheus import PrometheusSource
from modelplane.cli import listening
from modelplane.cli.auth_options import (
    OidcAlgorithm,
    OidcAudience,
    OidcGroup,
    OidcGroupsClaim,
    OidcIssuer,
    OidcJwks,
    oidc_verifier,
)
from modelplane.cli.caching import CacheDirOption, CacheSizeOption, replica_cache_options
from modelplane.cli.errors import EXIT_USAGE, CliError
from modelplane.cli.gateway import BalancingOption
from modelplane.cli.gitops import secret_from
from modelplane.cli.observing import LogFormat, observed
from modelplane.control.analysis import MetricSource
from modelplane.errors import AlreadyExistsError
from modelplane.gateway.balancing import Balancing
from modelplane.gateway.proxy import Gateway, GatewayOptions
from modelplane.gateway.routing import RoutingTable
from modelplane.gitops.repository import absolute_if_local
from modelplane.gitops.sources import GitSources
from modelplane.gitops.sync import SECRET_FIELDS, GitSourceSpec
from modelplane.portal import PortalOrigin, portal_routes
from modelplane.processes import cancel_all
from modelplane.security.authn import Authenticator
from modelplane.security.tokens import TokenVerifier
from modelplane.telemetry.gateway_metrics import GatewayMetrics

log = logging.getLogger(__name__)

CONTROL_BACKLOG = 2048  # uvicorn's default
GATEWAY_BACKLOG = 4096  # bursts of clients at the gateway wait in the kernel, not refused


class _Server(uvicorn.Server):
    """The platform handles signals itself, once for both servers."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def up(
    host: Annotated[
        str, typer.Option(help="Address for the control API and gateway.")
    ] = "127.0.0.1",
    auth: Annotated[
        bool,
        typer.Option(
            help="Require an API key on the control API and the gateway (the first start "
            "writes an admin key to STATE_DIR/admin.key)."
        ),
    ] = False,
    allow_unauthenticated: Annotated[
        bool,
        typer.Option(
            help="Serve a non-loopback --host without --auth: anyone who can reach it may deploy."
        ),
    ] = False,
    oidc_issuer: OidcIssuer = None,
    oidc_audience: OidcAudience = "modelplane",
    oidc_jwks: OidcJwks = None,
    oidc_algorithm: OidcAlgorithm = None,
    oidc_groups_claim: OidcGroupsClaim = "groups",
    oidc_group: OidcGroup = None,
    port: Annotated[int, typer.Option(help="Control API port.")] = 8090,
    gateway_port: Annotated[int, typer.Option(help="Gateway port.")] = 8080,
    state_dir: Annotated[Path, typer.Option(help="Where state and replica logs live.")] = Path(
        ".modelplane"
    ),
    examples: Annotated[bool, typer.Option(help="Also apply the example models.")] = False,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "warning",
    log_format: LogFormat = "text",
    max_held: Annotated[
        int, typer.Option(help="Requests the gateway holds per model during a cold start.")
    ] = 1000,
    hold_timeout: Annotated[
        float, typer.Option(help="Seconds a held request waits for a replica.")
    ] = 60.0,
    balancing: BalancingOption = Balancing.PREFIX,
    prometheus: Annotated[
        str | None,
        typer.Option(
            help="Prometheus URL to read canary analysis metrics from (it must scrape the "
            "gateway's /metrics); default: the gateway's own counters."
        ),
    ] = None,
    with_prometheus: Annotated[
        bool,
        typer.Option(
            help="Run Prometheus (the `prometheus` on PATH) beside the platform, scraping the "
            "gateway and every replica, and read canary analysis from it."
        ),
    ] = False,
    prometheus_port: Annotated[
        int, typer.Option(help="Port of the Prometheus --with-prometheus runs.")
    ] = 9090,
    git: Annotated[
        str | None,
        typer.Option(help="A git repository (path or URL) whose Models this platform serves."),
    ] = None,
    git_branch: Annotated[str, typer.Option(help="Branch of --git.")] = "main",
    git_path: Annotated[str, typer.Option(help="Directory of --git holding the Models.")] = ".",
    git_interval: Annotated[float, typer.Option(help="Seconds between fetches of --git.")] = 30.0,
    git_prune: Annotated[
        bool, typer.Option(help="Delete Models this source created once gone from git.")
    ] = False,
    git_self_heal: Annotated[
        bool, typer.Option(help="Revert hand-made changes to Models from git at each sync.")
    ] = False,
    git_webhook_secret_file: Annotated[
        Path | None,
        typer.Option(help="A file holding the secret the git host signs --git's webhook with."),
    ] = None,
    scrape_targets: Annotated[
        Path | None,
        typer.Option(
            help="Keep a Prometheus file_sd targets file here (gateway and ready replicas), "
            "for a Prometheus of your own."
        ),
    ] = None,
    cache_dir: CacheDirOption = None,
    cache_size: CacheSizeOption = None,
) -> None:
    """Start the embedded platform: control API, gateway and model replicas on this machine."""
    if not auth and not allow_unauthenticated and not _loopback(host):
        raise CliError(
            f"--host {host} without --auth would let anyone who reaches it deploy models",
            hint="add --auth (API keys), or --allow-unauthenticated if that is really wanted",
            exit_code=EXIT_USAGE,
        )
    oidc = oidc_verifier(oidc_issuer, oidc_audience, oidc_jwks, oidc_algorithm,
                         oidc_groups_claim, oidc_group)  # fmt: skip
    if oidc is not None and not auth:
        raise CliError("--oidc-* options need --auth", exit_code=EXIT_USAGE)
    if port == gateway_port:
        raise CliError(f"--port and --gateway-port are both {port}", exit_code=EXIT_USAGE)
    if with_prometheus and prometheus:
        raise CliError("--with-prometheus and --prometheus URL: choose one", exit_code=EXIT_USAGE)
    caching = replica_cache_options(cache_dir, cache_size)
    scraping = Scraping(
        targets=(scrape_targets or state_dir / "prometheus" / "targets.json").resolve(),
        run_port=prometheus_port if with_prometheus else None,
        enabled=with_prometheus or scrape_targets is not None,
    )
    source = None
    if git:
        secret = None
        if git_webhook_secret_file is not None:
            secret = secret_from(git_webhook_secret_file, "--git-webhook-secret-file")
        source = _git_source(
            url=absolute_if_local(git), branch=git_branch, path=git_path, interval=git_interval,
            prune=git_prune, self_heal=git_self_heal, webhook_secret=secret,
        )  # fmt: skip
    settings = _Settings(
        host=host, port=port, gateway_port=gateway_port, state_dir=state_dir.resolve(),
        examples=examples, log_level=log_level, log_format=log_format,
        gateway=GatewayOptions(max_held=max_held, hold_timeout=hold_timeout, balancing=balancing),
        prometheus=prometheus, scraping=scraping, source=source, auth=auth, oidc=oidc,
        serve_options=caching,
    )  # fmt: skip
    control_sockets = listening.listen(host, port, "--port", CONTROL_BACKLOG)
    try:
        gateway_sockets = listening.listen(host, gateway_port, "--gateway-port", GATEWAY_BACKLOG)
    except CliError:
        listening.close(control_sockets)
        raise
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        with (
            observed("modelplane", log_level, log_format),
            oidc if oidc is not None else contextlib.nullcontext(),  # fetches a JWKS URL now
            asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner,
        ):
            runner.run(_up(settings, [control_sockets, gateway_sockets]))
    finally:
        listening.close(control_sockets + gateway_sockets)


def _git_source(**given: Any) -> GitSourceSpec:
    """``--git`` and its options as the source named ``git``; a usage error names what is wrong
    (and never a secret)."""
    try:
        return GitSourceSpec(name="git", **given)
    except ValidationError as exc:
        problems = "; ".join(map(str, problems_from(exc, secret=SECRET_FIELDS)))
        raise CliError(f"--git: {problems}", exit_code=EXIT_USAGE) from exc


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class _Settings:
    host: str
    port: int
    gateway_port: int
    state_dir: Path
    examples: bool
    log_level: str
    log_format: str
    gateway: GatewayOptions
    prometheus: str | None  # a Prometheus of the user's, for analysis and charts
    scraping: Scraping
    source: GitSourceSpec | None
    auth: bool
    oidc: TokenVerifier | None
    serve_options: tuple[str, ...]  # more `modelplane serve` options for every replica

    @property
    def api_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def gateway_address(self) -> str:
        return f"{self.host}:{self.gateway_port}"


async def _up(settings: _Settings, sockets: list[list[socket.socket]]) -> None:
    """Serve on ``sockets``, bound already: the control API's, then the gateway's."""
    beside = await settings.scraping.start(settings.state_dir, settings.gateway_address)
    try:
        platform = _Platform(settings, beside, sockets)
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


class _Platform:
    """The parts of the embedded platform, wired: built here, served until a signal, closed in
    the order that lets each part finish with the others still there."""

    def __init__(
        self,
        settings: _Settings,
        beside: PrometheusBeside | None,
        sockets: list[list[socket.socket]],
    ) -> None:
        self.settings, self.beside, self.sockets = settings, beside, sockets
        state_dir = settings.state_dir
        self.store = SqliteStore(state_dir / "state.db")
        self.keys = SqliteKeyStore(state_dir / "state.db") if settings.auth else None
        self.admin_key = state_dir / "admin.key"
        self.made_admin_key = self.keys is not None and first_admin_key(self.keys, self.admin_key)
        system_token = secrets.token_urlsafe(32)
        authenticator = Authenticator(self.keys, system_token, settings.oidc)
        table = RoutingTable()
        self.gateway = gateway = Gateway(
            table, GatewayMetrics(), settings.gateway, authenticator=authenticator
        )
        self.supervisor = Supervisor(
            state_dir, base_dir=Path.cwd(), log_format=settings.log_format,
            serve_options=settings.serve_options,
        )  # fmt: skip
        prometheus = beside.url if beside is not None else settings.prometheus
        self.scraped = PrometheusSource(prometheus) if prometheus else None
        metrics: MetricSource = self.scraped or GatewayMetricSource(gateway.reading)
        self.controller = controller = Controller(
            self.store, self.supervisor, table, gateway, metrics, state_dir,
            f"http://{settings.gateway_address}", replica_limit=gateway.quotas.max_replicas,
        )  # fmt: skip
        # Demand, replica changes and writes all wake the controller at once.
        gateway.on_demand = controller.demand
        self.supervisor.on_change = controller.replicas_changed
        self.store.on_change(controller.wake)
        self.sources = GitSources(state_dir, settings.api_url, self.store.record_event,
                                  {"Authorization": f"Bearer {system_token}"})  # fmt: skip
        self.quotas = SqliteQuotaStore(state_dir / "state.db")
        self.history = history = MetricHistory(gateway.reading, gateway.in_flight)
        span = history.interval * KEPT_POINTS
        self.series = PrometheusSeries(prometheus, history.interval, span) if prometheus else None
        routes = control_routes(self.store, history, self.sources, self.quotas, gateway.quotas,
                                self.keys, self.series)  # fmt: skip
        control: ASGIApp = ControlApi(self.store, state_dir / "logs").app(
            [*routes, *portal_routes(settings.gateway_port)]
        )
        if self.keys is not None:
            control = AccessControl(control, authenticator)
        self.servers = self._servers(control)
        self._tasks: list[asyncio.Task[None]] = []
        self._background: list[asyncio.Task[None]] = []

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
                    PortalOrigin(self.gateway, settings.port), host=settings.host,
                    port=settings.gateway_port, http="httptools", log_level=settings.log_level,
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
            loop.create_task(self.history.run(self.store)),
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
            addresses = self.controller.replica_addresses()
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
        for client in (self.scraped, self.series):
            if client is not None:
                await client.close()
        if self.beside is not None:
            await self.beside.stop()
        self.store.close()
        self.quotas.close()
        if self.keys is not None:
            self.keys.close()


def _apply_examples(store: SqliteStore) -> None:
    for manifest in sorted(Path("examples").glob("*/*.yaml")):
        for model in load_model_file(manifest):
            with contextlib.suppress(AlreadyExistsError):
                store.create(model)
                print(f"applied example {model.key} from {manifest}", flush=True)
