"""``modelplane install``: put the CRD, RBAC and the operator on the current cluster."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
import yaml

from modelplane.cli.errors import EXIT_USAGE, CliError
from modelplane.errors import MissingExtraError


def install(
    namespace: Annotated[str, typer.Option(help="Namespace for the operator.")] = (
        "modelplane-system"
    ),
    image: Annotated[str | None, typer.Option(help="The modelplane image to run.")] = None,
    prometheus: Annotated[
        str | None, typer.Option(help="Prometheus URL for canary analysis on the cluster.")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option(help="Let the API server check everything, change nothing.")
    ] = False,
    allow_unsafe_crd: Annotated[
        bool,
        typer.Option(help="Apply a CRD change even if it would break stored Models."),
    ] = False,
    output: Annotated[
        str | None, typer.Option("--output", "-o", help="yaml: print the manifests, apply none.")
    ] = None,
    node_cache: Annotated[
        bool,
        typer.Option(
            help="Also run a node cache agent on every node (its own namespace, a hostPath): a "
            "pod that starts on a node where another fetched its artifact downloads nothing."
        ),
    ] = False,
    gateway_api_keys_secret: Annotated[
        str | None,
        typer.Option(
            help="The gateway requires an API key: the keys in this Secret's keys.json (from "
            "`modelplane auth keys create --to-file keys.json`), in the install's namespace."
        ),
    ] = None,
    gateway_oidc_issuer: Annotated[
        str | None, typer.Option(help="The gateway accepts JWT bearer tokens from this issuer.")
    ] = None,
    gateway_oidc_audience: Annotated[
        str, typer.Option(help="The audience (aud) those tokens must name.")
    ] = "modelplane",
    gateway_oidc_jwks: Annotated[
        str | None, typer.Option(help="The issuer's signing keys: a JWKS URL.")
    ] = None,
    gateway_oidc_group: Annotated[
        list[str] | None,
        typer.Option(
            help="GROUP=NAMESPACE:ROLE: members of GROUP get ROLE there (* for every "
            "namespace); repeatable."
        ),
    ] = None,
) -> None:
    """Install modelplane on the cluster of the current kubeconfig context (server-side apply)."""
    from modelplane.backends.kubernetes.install import (
        GatewayAuth,
        InstallOptions,
        apply,
        manifests,
    )

    try:
        auth = GatewayAuth(gateway_api_keys_secret, gateway_oidc_issuer, gateway_oidc_audience,
                           gateway_oidc_jwks, tuple(gateway_oidc_group or ()))  # fmt: skip
    except ValueError as exc:
        raise CliError(f"gateway credentials: {exc}", exit_code=EXIT_USAGE) from exc
    defaults = InstallOptions()
    options = InstallOptions(namespace, image or defaults.image, prometheus, auth, node_cache)
    found = manifests(options)
    if output is not None:
        if output != "yaml":
            raise CliError(f"-o {output!r}: only yaml is supported", exit_code=EXIT_USAGE)
        typer.echo(yaml.safe_dump_all(found, sort_keys=False), nl=False)
        return
    try:
        applied = asyncio.run(apply(found, dry_run=dry_run, allow_unsafe_crd=allow_unsafe_crd))
    except ImportError as exc:
        raise MissingExtraError("modelplane install", "kubernetes") from exc
    for line in applied:
        typer.echo(line)
