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
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
import uvicorn
import uvloop
from pydantic import ValidationError
from starlette.types import ASGIApp

from modelplane.api import load_model_file
from modelplane.api.manifests import problems_from
from modelplane.backends.local.access import AccessControl
from modelplane.backends.local.api_server import ControlApi
from modelplane.backends.local.control_routes import control_routes
from modelplane.backends.local.controller import Controller
from modelplane.backends.local.git_source import absolute_if_local
from modelplane.backends.local.gitops import SECRET_FIELDS, GitSourceSpec
from modelplane.backends.local.gitops_sources import GitSources
from modelplane.backends.local.key_store import SqliteKeyStore, first_admin_key
from modelplane.backends.local.metric_history import KEPT_POINTS, MetricHistory
from modelplane.backends.local.metric_source import GatewayMetricSource
from modelplane.backends.local.prometheus_beside import Scraping
from modelplane.backends.local.quota_api import SqliteQuotaStore
from modelplane.backends.local.scrape_targets import TargetsFile, targets
from modelplane.backends.local.store import SqliteStore
from modelplane.backends.local.supervisor import Supervisor
from modelplane.backends.prometheus import PrometheusSource
from modelplane.backends.prometheus_series import PrometheusSeries
from modelplane.backends.tasks import cancel_all
from modelplane.cli.auth_options import (
    OidcAlgorithm,
    OidcAudience,
    OidcGroup,
    OidcGroupsClaim,
    OidcIssuer,
    OidcJwks,
    oidc_verifier,
)
from modelplane.cli.errors import EXIT_USAGE, CliError
from modelplane.cli.gateway import BalancingOption
from modelplane.cli.gitops import secret_from
from modelplane.cli.observing import LogFormat, observed
from modelplane.control.analysis import MetricSource
from modelplane.errors import AlreadyExistsError
from modelplane.gateway.balancing import Balancing
from modelplane.gateway.proxy import Gateway, GatewayOptions
from modelplane.gateway.routing import RoutingTable
from modelplane.portal import PortalOrigin, portal_routes
from modelplane.security.authn import Authenticator
from modelplane.security.tokens import TokenVerifier
from modelplane.telemetry.gateway_metrics import GatewayMetrics

log = logging.getLogger(__name__)


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
    state_dir.mkdir(parents=True, exist_ok=True)
    if with_prometheus and prometheus:
        raise CliError("--with-prometheus and --prometheus URL: choose one", exit_code=EXIT_USAGE)
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
        try:
            source = GitSourceSpec(
                name="git", url=absolute_if_local(git), branch=git_branch, path=git_path,
                interval=git_interval, prune=git_prune, self_heal=git_self_heal,
                webhook_secret=secret,
            )  # fmt: skip
        except ValidationError as exc:
            problems = "; ".join(map(str, problems_from(exc, secret=SECRET_FIELDS)))
            raise CliError(f"--git: {problems}", exit_code=EXIT_USAGE) from exc
    with (
        observed("modelplane", log_level, log_format),
        oidc if oidc is not None else contextlib.nullcontext(),  # fetches a JWKS URL meanwhile
        asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner,
    ):
        options = GatewayOptions(max_held=max_held, hold_timeout=hold_timeout, balancing=balancing)
        runner.run(
            _up(
                host,
                port,
                gateway_port,
                state_dir.resolve(),
                examples,
                log_level,
                log_format,
                options,
                prometheus,
                scraping,
                source,
                auth,
                oidc,
            )
        )


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def _up(
    host: str,
    port: int,
    gateway_port: int,
    state_dir: Path,
    examples: bool,
    log_level: str,
    log_format: str,
    options: GatewayOptions,
    prometheus: str | None,
    scraping: Scraping,
    source: GitSourceSpec | None,
    auth: bool,
    oidc: TokenVerifier | None,
) -> None:
    store = SqliteStore(state_dir / "state.db")
    keys = SqliteKeyStore(state_dir / "state.db") if auth else None
    admin_key = state_dir / "admin.key"
    made_admin_key = keys is not None and first_admin_key(keys, admin_key)
    system_token = secrets.token_urlsafe(32)
    authenticator = Authenticator(keys, system_token, oidc)
    table = RoutingTable()
    gateway_url = f"http://{host}:{gateway_port}"
    gateway = Gateway(table, GatewayMetrics(), options, authenticator=authenticator)
    supervisor = Supervisor(state_dir, base_dir=Path.cwd(), log_format=log_format)
    beside = await scraping.start(state_dir, f"{host}:{gateway_port}")
    if beside is not None:
        prometheus = beside.url
    scraped = PrometheusSource(prometheus) if prometheus else None
    metrics: MetricSource = scraped or GatewayMetricSource(gateway.reading)
    controller = Controller(store, supervisor, table, gateway, metrics, state_dir, gateway_url,
                            replica_limit=gateway.quotas.max_replicas)  # fmt: skip
    # Demand, replica changes and writes all wake the controller at once.
    gateway.on_demand = controller.demand
    supervisor.on_change = controller.replicas_changed
    store.on_change(controller.wake)
    api = ControlApi(store, state_dir / "logs")
    api_url = f"http://{host}:{port}"
    sources = GitSources(
        state_dir, api_url, store.record_event, {"Authorization": f"Bearer {system_token}"}
    )
    quotas = SqliteQuotaStore(state_dir / "state.db")
    history = MetricHistory(gateway.reading, gateway.in_flight)
    span = history.interval * KEPT_POINTS
    series = PrometheusSeries(prometheus, history.interval, span) if prometheus else None
    routes = control_routes(store, history, sources, quotas, gateway.quotas, keys, series)
    control: ASGIApp = api.app([*routes, *portal_routes(gateway_port)])
    if keys is not None:
        control = AccessControl(control, authenticator)
    if source is not None:
        sources.add(source, replace=True)
    servers = [
        _Server(
            uvicorn.Config(
                control, host=host, port=port, log_level=log_level,
                access_log=False,
                log_config=None,
            )
        ),
        _Server(
            uvicorn.Config(
                PortalOrigin(gateway, port), host=host, port=gateway_port,
                http="httptools", log_level=log_level,
                access_log=False, log_config=None, proxy_headers=False, lifespan="on",
                backlog=4096,
            )
        ),
    ]  # fmt: skip
    if examples:
        _apply_examples(store)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    tasks = [loop.create_task(s.serve()) for s in servers]
    control_loop = loop.create_task(controller.run())
    sampling = loop.create_task(history.run(store))
    sources.start()
    if scraping.enabled:
        targets_file = TargetsFile(scraping.targets)
        gateway_address = f"{host}:{gateway_port}"

        def publish_targets() -> None:
            targets_file.update(targets(gateway_address, controller.replica_addresses()))

        def replicas_changed() -> None:
            controller.replicas_changed()
            publish_targets()

        publish_targets()
        supervisor.on_change = replicas_changed
    while not all(s.started for s in servers):
        if any(t.done() for t in tasks):
            break  # a port in use: uvicorn said why
        await asyncio.sleep(0.05)
    if all(s.started for s in servers):
        print(
            f"modelplane is up\n  portal       {api_url}/\n  control API  {api_url}\n"
            f"  gateway      {gateway_url}",
            flush=True,
        )
        if beside is not None:
            print(f"  prometheus   {beside.url}", flush=True)
        if keys is None:
            print("  auth         off: anyone who reaches these ports may deploy", flush=True)
        else:
            made = " (made now)" if made_admin_key else ""
            print(f"  auth         API keys; the first admin key is in {admin_key}{made}",
                  flush=True)  # fmt: skip
        print(f"  state        {state_dir}\nPress Ctrl-C to stop.", flush=True)
        await asyncio.wait(
            [loop.create_task(stop.wait()), *tasks], return_when=asyncio.FIRST_COMPLETED
        )
    for server in servers:
        server.should_exit = True
    await cancel_all([control_loop, sampling])
    await sources.close()
    await supervisor.close()
    await asyncio.gather(*tasks, return_exceptions=True)
    await gateway.close()
    if scraped is not None:
        await scraped.close()
    if series is not None:
        await series.close()
    if beside is not None:
        await beside.stop()
    store.close()
    quotas.close()
    if keys is not None:
        keys.close()
    failed = [t for t in tasks if t.done() and not t.cancelled() and t.exception()]
    if not all(s.started for s in servers) or failed:
        raise typer.Exit(1)


def _apply_examples(store: SqliteStore) -> None:
    for manifest in sorted(Path("examples").glob("*/*.yaml")):
        for model in load_model_file(manifest):
            with contextlib.suppress(AlreadyExistsError):
                store.create(model)
                print(f"applied example {model.key} from {manifest}", flush=True)
