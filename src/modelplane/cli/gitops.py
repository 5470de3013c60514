"""``modelplane gitops``: the git sources of a running platform."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from modelplane.cli.client import DEFAULT_SERVER, ControlClient
from modelplane.cli.errors import CliError
from modelplane.cli.models import NamespaceOption, ServerOption
from modelplane.gitops.promotion import promote as promote_to_git
from modelplane.gitops.repository import GitError, absolute_if_local


def build() -> typer.Typer:
    app = typer.Typer(help="Git sources: a repository as the source of truth for Models.")
    app.command()(status)
    app.command()(add)
    app.command()(remove)
    app.command()(sync)
    return app


def add(
    name: Annotated[str, typer.Argument(help="A name for the source (lower case, digits, -).")],
    url: Annotated[str, typer.Argument(help="The repository: a path or any URL git fetches.")],
    branch: Annotated[str, typer.Option(help="The branch to follow.")] = "main",
    path: Annotated[str, typer.Option(help="The repository's directory of Models.")] = ".",
    interval: Annotated[float, typer.Option(help="Seconds between fetches.")] = 30.0,
    prune: Annotated[
        bool, typer.Option(help="Delete Models this source created once gone from git.")
    ] = False,
    self_heal: Annotated[
        bool, typer.Option(help="Revert hand-made changes to this source's Models.")
    ] = False,
    webhook_secret_file: Annotated[
        Path | None,
        typer.Option(help="A file holding the secret the git host signs its push webhook with."),
    ] = None,
    server: ServerOption = DEFAULT_SERVER,
) -> None:
    """Add a git source to a running platform; it syncs at once and then every interval."""
    url = absolute_if_local(url)
    body: dict[str, object] = {"name": name, "url": url, "branch": branch, "path": path,
                               "interval": interval, "prune": prune,
                               "selfHeal": self_heal}  # fmt: skip
    if webhook_secret_file is not None:
        body["webhookSecret"] = secret_from(webhook_secret_file, "--webhook-secret-file")
    ControlClient(server).call("POST", "/gitops", body)
    typer.echo(f"git source {name} added: {url} branch {branch} path {path}")
    if webhook_secret_file is not None:
        typer.echo(f"push webhook: POST /gitops/{name}/webhook, signed with the secret")


def secret_from(path: Path, option: str) -> str:
    """A secret kept in a file (never on the command line, where ``ps`` shows it to anyone),
    without the newline an editor or ``echo`` ends it with."""
    try:
        return path.read_text().removesuffix("\n").removesuffix("\r")
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"{option} {path}: cannot read it ({exc})") from exc


def remove(
    name: Annotated[str, typer.Argument(help="The source.")],
    server: ServerOption = DEFAULT_SERVER,
) -> None:
    """Stop and forget a git source; the Models it applied keep serving, as ordinary Models."""
    ControlClient(server).call("DELETE", f"/gitops/{name}")
    typer.echo(f"git source {name} removed")


def sync(
    name: Annotated[str | None, typer.Argument(help="The source; all when left out.")] = None,
    server: ServerOption = DEFAULT_SERVER,
) -> None:
    """Sync now rather than at the next interval (what a push webhook does)."""
    reply = ControlClient(server).call(
        "POST", f"/gitops/{name}/sync" if name else "/gitops/webhook"
    )
    typer.echo(f"syncing {', '.join(reply['syncing']) or 'nothing (no git sources)'}")


def status(server: ServerOption = DEFAULT_SERVER) -> None:
    """Each source: last applied and attempted commit, result and message, Models managed."""
    items = ControlClient(server).call("GET", "/gitops")["items"]
    if not items:
        typer.echo("no git sources (modelplane gitops add NAME URL, or up --git URL)")
    for item in items:
        applied = (item["lastAppliedCommit"] or "-")[:12]
        attempted = (item["lastAttemptedCommit"] or "-")[:12]
        typer.echo(f"{item['name']}: {item['url']} branch {item['branch']} path {item['path']}")
        typer.echo(f"  result     {item['result']}: {item['message']}")
        typer.echo(f"  applied    {applied}    attempted {attempted}    at {item['syncedAt']}")
        typer.echo(f"  managed    {', '.join(item['managed']) or '-'}")
        if item.get("drift"):
            typer.echo(f"  drift      {', '.join(item['drift'])} (changed by hand)")
        typer.echo(f"  webhook    {_webhook(item.get('webhook'))}")


def _webhook(webhook: dict[str, object] | None) -> str:
    if not webhook:
        return "-"
    if webhook["signed"]:
        return f"POST {webhook['path']}, signed with the source's secret"
    return f"POST {webhook['path']}: no secret (add the source with --webhook-secret-file)"


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
