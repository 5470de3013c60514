"""``modelplane gateway``: run the modelplane gateway in a cluster (or against a kubeconfig)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Annotated

import typer
import uvloop

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
from modelplane.cli.observing import AccessLogOption, AccessLogSampleOption, LogFormat, observed
from modelplane.errors import MissingExtraError
from modelplane.gateway.balancing import Balancing
from modelplane.gateway.flow_control import FlowOptions
from modelplane.gateway.scoring import EngineWeights
from modelplane.security.authn import Authenticator
from modelplane.security.key_file import FileKeyStore
from modelplane.telemetry.access import AccessLogSettings

BalancingOption = Annotated[
    Balancing,
    typer.Option(
        help="How chat and completion requests are spread over a revision's replicas: by "
        "engine state (the prompt blocks each replica's cache likely holds against its "
        "running and waiting requests and KV cache use), by prompt prefix (consistent hashing "
        "with bounded loads, so KV caches stay warm), by least outstanding requests, or round "
        "robin."
    ),
]
EngineWeightsOption = Annotated[
    str,
    typer.Option(
        help="Weights of --balancing engine's score, e.g. 'prefix=1,queue=0.5,kv=0.25,"
        "max-waiting=1' (any of them; the others keep these defaults)."
    ),
]


FlowMaxWaitingOption = Annotated[
    int,
    typer.Option(
        help="Requests of the OpenAI API that may wait in the gateway per saturated model "
        "(fair flow control: interactive before batch, namespaces in turn); 0 refuses at once."
    ),
]
FlowMaxWaitOption = Annotated[
    float,
    typer.Option(help="Seconds a request may wait for a saturated model before a 429."),
]


def flow_options(max_waiting: int, max_wait: float) -> FlowOptions:
    if max_waiting < 0:
        raise CliError(f"--flow-max-waiting {max_waiting}: must be 0 or more", exit_code=EXIT_USAGE)
    if max_wait <= 0:
        raise CliError(
            f"--flow-max-wait {max_wait:g}: must be more than 0 seconds", exit_code=EXIT_USAGE
        )
    return FlowOptions(max_waiting, max_wait)


def parse_engine_weights(text: str) -> EngineWeights:
    try:
        return EngineWeights.parse(text)
    except ValueError as exc:
        raise CliError(f"--engine-weights {text!r}: {exc}", exit_code=EXIT_USAGE) from exc


def gateway(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "0.0.0.0",  # noqa: S104
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    namespace: Annotated[
        list[str] | None,
        typer.Option(help="Route only this namespace's Models (repeatable); default: all."),
    ] = None,
    report_to: Annotated[
        str,
        typer.Option(help="The operator's load endpoint, for autoscaling; '' to send none."),
    ] = "http://modelplane-operator.modelplane-system.svc:8080/v1/load",
    name: Annotated[
        str | None, typer.Option(help="This gateway's name in load reports; default: hostname.")
    ] = None,
    max_held: Annotated[
        int, typer.Option(help="Requests held per model during a cold start.")
    ] = 1000,
    hold_timeout: Annotated[
        float, typer.Option(help="Seconds a held request waits for a replica.")
    ] = 60.0,
    balancing: BalancingOption = Balancing.ENGINE,
    engine_weights: EngineWeightsOption = "",
    flow_max_waiting: FlowMaxWaitingOption = FlowOptions.max_waiting,
    flow_max_wait: FlowMaxWaitOption = FlowOptions.max_wait,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "warning",
    log_format: LogFormat = "json",
    access_log: AccessLogOption = True,
    access_log_sample: AccessLogSampleOption = 1.0,
    api_keys: Annotated[
        Path | None,
        typer.Option(
            help="Require an API key: the keys (hashed) in this file, from `modelplane auth "
            "keys create --to-file`, read again when it changes (mount it from a Secret)."
        ),
    ] = None,
    oidc_issuer: OidcIssuer = None,
    oidc_audience: OidcAudience = "modelplane",
    oidc_jwks: OidcJwks = None,
    oidc_algorithm: OidcAlgorithm = None,
    oidc_groups_claim: OidcGroupsClaim = "groups",
    oidc_group: OidcGroup = None,
    peers: Annotated[
        str,
        typer.Option(
            help="The Service in front of every gateway (NAME in this pod's namespace, or "
            "NAMESPACE/NAME): each gateway enforces its share of the namespaces' quotas "
            "(quota.modelplane.io/* annotations); '' when this gateway is alone."
        ),
    ] = "modelplane-gateway",
) -> None:
    """Run the gateway on a cluster: routes from Models and EndpointSlices, load to the
    operator."""
    try:
        from modelplane.cli.cluster_gateway import ClusterGatewayOptions, run
    except ImportError as exc:
        raise MissingExtraError("the cluster gateway", "kubernetes") from exc
    from modelplane.gateway.proxy import GatewayOptions

    tokens = oidc_verifier(oidc_issuer, oidc_audience, oidc_jwks, oidc_algorithm,
                           oidc_groups_claim, oidc_group)  # fmt: skip
    try:
        key_store = FileKeyStore(api_keys) if api_keys is not None else None
    except (OSError, ValueError, KeyError) as exc:
        raise CliError(f"--api-keys {api_keys}: {exc}", exit_code=EXIT_USAGE) from exc
    authenticator = Authenticator(key_store, tokens=tokens)
    access = AccessLogSettings(access_log, access_log_sample)
    defaults = ClusterGatewayOptions()
    options = ClusterGatewayOptions(
        host=host,
        port=port,
        namespaces=tuple(namespace or ()),
        report_to=report_to or None,
        name=name or defaults.name,
        proxy=GatewayOptions(
            max_held=max_held,
            hold_timeout=hold_timeout,
            balancing=balancing,
            engine_weights=parse_engine_weights(engine_weights),
            flow=flow_options(flow_max_waiting, flow_max_wait),
        ),
        log_level=log_level,
        authenticator=authenticator if authenticator.enabled else None,
        peers=peers,
        access_log=access,
    )
    with (
        observed("modelplane-gateway", log_level, log_format, access),
        tokens if tokens is not None else contextlib.nullcontext(),  # fetches a JWKS URL meanwhile
        asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner,
    ):
        logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.getLogger().level))
        runner.run(run(options))
