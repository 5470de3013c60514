"""``modelplane operator``: run the Kubernetes operator (in a cluster, or against a kubeconfig)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from typing import Annotated

import typer

from modelplane.cli.errors import EXIT_USAGE, CliError
from modelplane.cli.observing import LogFormat, observed
from modelplane.errors import MissingExtraError


def operator(
    namespace: Annotated[
        list[str] | None,
        typer.Option(help="Watch only this namespace (repeatable); default: the whole cluster."),
    ] = None,
    image: Annotated[str | None, typer.Option(help="The runtime image model pods run.")] = None,
    node_cache_url: Annotated[
        str | None,
        typer.Option(
            help="The node cache agent (modelplane install --node-cache): model pods' fetch "
            "step asks it before the store."
        ),
    ] = None,
    gateway_url: Annotated[
        str | None, typer.Option(help="Base URL of the cluster's modelplane gateway, for status.")
    ] = None,
    prometheus: Annotated[
        str | None,
        typer.Option(help="Prometheus URL for canary analysis (it must scrape the gateways)."),
    ] = None,
    route_parent: Annotated[
        str | None,
        typer.Option(help="NAMESPACE/NAME of the Gateway that HTTPRoutes attach to."),
    ] = None,
    endpoint_picker: Annotated[
        str,
        typer.Option(
            help="The Service (NAME:PORT) of each InferencePool's endpoint picker, with the "
            "Gateway API Inference Extension installed; {pool} and {model} stand for the pool's "
            "name (its revision's) and its Model's."
        ),
    ] = "{pool}-epp:9002",
    model_env: Annotated[
        list[str] | None,
        typer.Option(
            help="NAME=VALUE for every model pod (repeatable), e.g. "
            "OTEL_EXPORTER_OTLP_ENDPOINT=http://otel-collector.observability:4318."
        ),
    ] = None,
    workers: Annotated[int, typer.Option(help="Models reconciled at once.")] = 8,
    liveness: Annotated[
        str, typer.Option(help="Liveness endpoint URL to serve.")
    ] = "http://0.0.0.0:8081/healthz",
    metrics_port: Annotated[
        int, typer.Option(help="Port of the operator's Prometheus /metrics; 0: none.")
    ] = 8080,
    leader_elect: Annotated[
        bool,
        typer.Option(
            help="Contend for the Lease modelplane-operator and reconcile only while holding "
            "it, so that several replicas can run (modelplane install turns it on)."
        ),
    ] = False,
    leader_election_namespace: Annotated[
        str | None,
        typer.Option(help="Namespace of the Lease; default: the pod's, else modelplane-system."),
    ] = None,
    leader_election_identity: Annotated[
        str | None,
        typer.Option(help="Who holds the Lease while this process leads; default: HOSTNAME-PID."),
    ] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
    log_format: LogFormat = "json",
) -> None:
    """Run the operator: reconcile Model resources into Deployments, Services and routes."""
    try:
        from modelplane.backends.kubernetes.children import ClusterSettings
        from modelplane.backends.kubernetes.running import Election, OperatorOptions, run
    except ImportError as exc:
        raise MissingExtraError("the operator", "kubernetes") from exc
    defaults = ClusterSettings()
    parent = None
    if route_parent is not None:
        found = route_parent.split("/")
        if len(found) != 2 or not all(found):
            raise CliError(
                f"--route-parent {route_parent!r} is not NAMESPACE/NAME", exit_code=EXIT_USAGE
            )
        parent = (found[0], found[1])
    picker, picker_port = _endpoint_picker(endpoint_picker)
    cluster = ClusterSettings(
        image=image or defaults.image,
        gateway_url=(gateway_url or defaults.gateway_url).rstrip("/"),
        route_parent=parent,
        model_env=tuple(_pair(item) for item in model_env or ()),
        node_cache_url=node_cache_url,
        endpoint_picker=picker,
        endpoint_picker_port=picker_port,
    )
    options = OperatorOptions(
        cluster=cluster,
        namespaces=tuple(namespace or ()),
        prometheus=prometheus,
        workers=workers,
        liveness=liveness or None,
        metrics_port=metrics_port or None,
    )
    if leader_elect:  # the defaults (the pod's namespace, HOSTNAME-PID) for what is not given
        election = Election()
        election = replace(
            election,
            namespace=leader_election_namespace or election.namespace,
            identity=leader_election_identity or election.identity,
        )
        options = replace(options, election=election)
    with observed("modelplane-operator", log_level, log_format):
        quiet = max(logging.WARNING, logging.getLogger().level)
        for chatty in ("kopf", "httpx", "httpx2"):  # a line per watch event, per request
            logging.getLogger(chatty).setLevel(quiet)
        asyncio.run(run(options))


def _pair(item: str) -> tuple[str, str]:
    name, equals, value = item.partition("=")
    if not equals or not name or not name.replace("_", "").isalnum():
        raise CliError(f"--model-env {item!r} is not NAME=VALUE", exit_code=EXIT_USAGE)
    return name, value


def _endpoint_picker(value: str) -> tuple[str, int]:
    name, _, port = value.rpartition(":")
    try:
        number = int(port)
        example = name.format(pool="pool", model="model")
    except (ValueError, KeyError, IndexError) as exc:
        raise CliError(
            f"--endpoint-picker {value!r} is not NAME:PORT (NAME may hold {{pool}} and {{model}})",
            exit_code=EXIT_USAGE,
        ) from exc
    if not name or not 0 < number < 65536 or not example:
        raise CliError(f"--endpoint-picker {value!r} is not NAME:PORT", exit_code=EXIT_USAGE)
    return name, number
