"""``modelplane up``: the embedded platform in one process (its options; the wiring is
``embedded.py``).

Composes the store, the control API, the controller with its replica supervisor, and the gateway
on one event loop; replicas are child processes. Ctrl-C (or SIGTERM) stops accepting, drains the
replicas and exits; state stays in the state directory for the next ``up``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from pathlib import Path
from typing import Annotated, Any

import typer
import uvloop
from pydantic import ValidationError

from modelplane.api.manifests import problems_from
from modelplane.backends.local.prometheus_beside import Scraping
from modelplane.backends.local.state_lock import StateLock
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
from modelplane.cli.embedded import CONTROL_BACKLOG, GATEWAY_BACKLOG, Settings, run
from modelplane.cli.errors import EXIT_USAGE, CliError
from modelplane.cli.gateway import (
    BalancingOption,
    EngineWeightsOption,
    FlowMaxWaitingOption,
    FlowMaxWaitOption,
    flow_options,
    parse_engine_weights,
)
from modelplane.cli.gitops import secret_from
from modelplane.cli.observing import AccessLogOption, AccessLogSampleOption, LogFormat, observed
from modelplane.gateway.balancing import Balancing
from modelplane.gateway.flow_control import FlowOptions
from modelplane.gateway.proxy import GatewayOptions
from modelplane.gitops.repository import absolute_if_local
from modelplane.gitops.sync import SECRET_FIELDS, GitSourceSpec
from modelplane.telemetry.access import AccessLogSettings

log = logging.getLogger(__name__)


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
    access_log: AccessLogOption = True,
    access_log_sample: AccessLogSampleOption = 1.0,
    max_held: Annotated[
        int, typer.Option(help="Requests the gateway holds per model during a cold start.")
    ] = 1000,
    hold_timeout: Annotated[
        float, typer.Option(help="Seconds a held request waits for a replica.")
    ] = 60.0,
    balancing: BalancingOption = Balancing.ENGINE,
    engine_weights: EngineWeightsOption = "",
    flow_max_waiting: FlowMaxWaitingOption = FlowOptions.max_waiting,
    flow_max_wait: FlowMaxWaitOption = FlowOptions.max_wait,
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
    settings = Settings(
        host=host, port=port, gateway_port=gateway_port, state_dir=state_dir.resolve(),
        examples=examples, log_level=log_level, log_format=log_format,
        access_log=AccessLogSettings(access_log, access_log_sample),
        gateway=GatewayOptions(
            max_held=max_held, hold_timeout=hold_timeout, balancing=balancing,
            engine_weights=parse_engine_weights(engine_weights),
            flow=flow_options(flow_max_waiting, flow_max_wait),
        ),
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
        with (
            StateLock(settings.state_dir),  # one platform per state directory; restore waits
            observed("modelplane", log_level, log_format, settings.access_log),
            oidc if oidc is not None else contextlib.nullcontext(),  # fetches a JWKS URL now
            asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner,
        ):
            runner.run(run(settings, [control_sockets, gateway_sockets]))
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
