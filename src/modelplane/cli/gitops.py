"""``modelplane gitops``: the git sources of a running platform."""

from __future__ import annotations

from typing import Annotated

import httpx
import typer

from modelplane.cli.client import DEFAULT_SERVER
from modelplane.cli.errors import CliError


def build() -> typer.Typer:
    app = typer.Typer(help="Git sources: a repository as the source of truth for Models.")
    app.command()(status)
    return app


def status(
    server: Annotated[
        str, typer.Option("--server", help="Control API URL.", envvar="MODELPLANE_SERVER")
    ] = DEFAULT_SERVER,
) -> None:
    """Each source: last applied and attempted commit, result and message, Models managed."""
    try:
        reply = httpx.get(f"{server.rstrip('/')}/gitops", timeout=10)
        reply.raise_for_status()
    except httpx.HTTPError as exc:
        raise CliError(f"cannot read git sources from {server}: {exc}") from exc
    items = reply.json()["items"]
    if not items:
        typer.echo("no git sources (start `modelplane up --git URL`)")
    for item in items:
        applied = (item["lastAppliedCommit"] or "-")[:12]
        attempted = (item["lastAttemptedCommit"] or "-")[:12]
        typer.echo(f"{item['name']}: {item['url']} branch {item['branch']} path {item['path']}")
        typer.echo(f"  result     {item['result']}: {item['message']}")
        typer.echo(f"  applied    {applied}    attempted {attempted}    at {item['syncedAt']}")
        typer.echo(f"  managed    {', '.join(item['managed']) or '-'}")
        if item.get("drift"):
            typer.echo(f"  drift      {', '.join(item['drift'])} (changed by hand)")
