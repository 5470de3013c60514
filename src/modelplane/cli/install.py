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
) -> None:
    """Install modelplane on the cluster of the current kubeconfig context (server-side apply)."""
    from modelplane.backends.kubernetes.install import InstallOptions, apply, manifests

    defaults = InstallOptions()
    options = InstallOptions(namespace, image or defaults.image, prometheus)
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
