"""``modelplane gitops``: the git sources of a running platform."""

from __future__ import annotations

from typing import Annotated

import httpx
import typer

from modelplane.backends.local.git_promotion import promote as promote_to_git
from modelplane.backends.local.git_source import GitError
from modelplane.cli.client import DEFAULT_SERVER, ControlClient
from modelplane.cli.errors import CliError
from modelplane.cli.models import NamespaceOption, ServerOption


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


def promote(
    name: Annotated[str, typer.Argument(help="The Model to promote.")],
    to_git: Annotated[
        str, typer.Option("--to-git", help="The repository: a path or a URL git can push to.")
    ],
    branch: Annotated[str, typer.Option(help="A new branch for the commit (for a pull request).")],
    base: Annotated[str, typer.Option(help="The branch it starts from.")] = "main",
    path: Annotated[str, typer.Option(help="The repository's directory of Models.")] = ".",
    message: Annotated[str, typer.Option(help="The commit message.")] = "",
    namespace: NamespaceOption = "default",
    server: ServerOption = DEFAULT_SERVER,
) -> None:
    """Write a running Model's spec into a repository as a commit on a new branch, so that a
    change tried here ships through GitOps."""
    model = ControlClient(server).get(namespace, name)
    try:
        done = promote_to_git(model, to_git, branch, base=base, path=path, message=message)
    except GitError as exc:
        raise CliError(str(exc)) from exc
    verb = "added" if done.created else "updated"
    typer.echo(f"{verb} {done.file} on branch {done.branch} at {done.commit[:12]} in {to_git}")
