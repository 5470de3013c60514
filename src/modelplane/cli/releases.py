"""``modelplane releases``: each team's model releases and their DORA figures."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

import typer

from modelplane.api.releases import parse_period
from modelplane.apiserver.releases import RELEASES_PREFIX, release_report
from modelplane.cli.client import DEFAULT_SERVER, ControlClient
from modelplane.cli.errors import EXIT_USAGE, CliError
from modelplane.cli.models import NamespaceOption, ServerOption
from modelplane.cli.output import table
from modelplane.errors import MissingExtraError

FIGURE_HEADERS = ("DEPLOYS", "PER DAY", "LEAD TIME", "FAILURE RATE", "TIME TO RESTORE")


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    parts = []
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60)):
        if whole >= size:
            parts.append(f"{whole // size}{unit}")
            whole %= size
    return "".join(parts[:2])


def figure_columns(figures: dict[str, Any]) -> list[str]:
    rate = figures["changeFailureRate"]
    return [
        str(figures["deployments"]),
        f"{figures['deploymentsPerDay']:.2f}",
        duration(figures["leadTimeSeconds"]),
        "-" if rate is None else f"{rate:.0%} ({figures['failed']}/{figures['releases']})",
        duration(figures["timeToRestoreSeconds"]),
    ]


def releases(
    namespace: NamespaceOption = "default",
    all_namespaces: Annotated[bool, typer.Option("--all-namespaces", "-A")] = False,
    since: Annotated[str, typer.Option(help="The period: 30d, 12h, 2w.")] = "30d",
    undo_window: Annotated[
        str, typer.Option(help="A release brought back within this counts as failed.")
    ] = "24h",
    output: Annotated[
        str, typer.Option("--output", "-o", help="wide (every release) or json.")
    ] = "",
    cluster: Annotated[
        bool,
        typer.Option(
            help="Read the history from the Kubernetes cluster of the current kubeconfig "
            "context (its ControllerRevisions, as your credentials may list them) instead of "
            "the embedded control API."
        ),
    ] = False,
    server: ServerOption = DEFAULT_SERVER,
) -> None:
    """Releases per team and Model: deployment frequency, lead time, change-failure rate and
    time to restore (DORA), from the platform's rollout history."""
    if output not in ("", "wide", "json"):
        raise CliError(f"unknown output format {output!r}", hint="use -o wide or json",
                       exit_code=EXIT_USAGE)  # fmt: skip
    try:
        period, window = parse_period(since), parse_period(undo_window)
    except ValueError as exc:
        raise CliError(str(exc), exit_code=EXIT_USAGE) from exc
    scope = None if all_namespaces else namespace
    if cluster:
        report = asyncio.run(_from_cluster(scope, period, window))
    else:
        where = "" if all_namespaces else f"/namespaces/{namespace}"
        query = urlencode({"since": since, "undoWindow": undo_window})
        report = ControlClient(server).call("GET", f"{RELEASES_PREFIX}{where}/releases?{query}")
    if output == "json":
        typer.echo(json.dumps(report, indent=2))
        return
    if not report["items"]:
        typer.echo(f"No releases in {scope or 'any namespace'} in the last {since}.", err=True)
        return
    rows = [
        [team["namespace"], model["name"], *figure_columns(model["summary"])]
        for team in report["teams"]
        for model in team["models"]
    ]
    rows += [[team["namespace"], "(team)", *figure_columns(team["summary"])]
             for team in report["teams"]]  # fmt: skip
    typer.echo(table(("NAMESPACE", "MODEL", *FIGURE_HEADERS), rows))
    if output == "wide":
        typer.echo()
        typer.echo(table(
            ("NAMESPACE", "REVISION", "OUTCOME", "STARTED", "FINISHED", "LEAD TIME", "RESTORED IN",
             "REASON"),
            [[r["namespace"], r["revision"], r["outcome"], r["started"][:19],
              (r["finished"] or "-")[:19], duration(r["leadTimeSeconds"]),
              duration(r["timeToRestoreSeconds"]), _why(r)] for r in report["items"]],
        ))  # fmt: skip
        if report["incidents"]:
            typer.echo()
            typer.echo(table(
                ("NAMESPACE", "MODEL", "SLO BREACHED ON", "STARTED", "RESTORED", "RESTORED IN",
                 "REASON"),
                [[i["namespace"], i["model"], i["revision"], i["started"][:19],
                  (i["restored"] or "-")[:19], duration(i["timeToRestoreSeconds"]), i["reason"]]
                 for i in report["incidents"]],
            ))  # fmt: skip


def _why(release: dict[str, Any]) -> str:
    override = release.get("freezeOverride")
    through = f"released through a freeze: {override}" if override else ""
    return "; ".join(part for part in (release["reason"], through) if part)


async def _from_cluster(
    namespace: str | None, since: timedelta, undo_window: timedelta
) -> dict[str, Any]:
    try:
        from modelplane.backends.kubernetes.connecting import connected
        from modelplane.backends.kubernetes.release_history import cluster_history
    except ImportError as exc:
        raise MissingExtraError("modelplane releases --cluster", "kubernetes") from exc
    async with connected("modelplane-cli") as client:
        history = await cluster_history(client, namespace)
    return release_report(history, datetime.now(UTC), since, undo_window)
