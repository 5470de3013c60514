"""``modelplane usage``: what each team's Models used (replica time with what it requested,
requests, tokens), and with ``--prices`` what that cost."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

import typer
import yaml
from pydantic import Field, NonNegativeFloat, ValidationError

from modelplane.api.manifests import problems_from
from modelplane.api.meta import Wire
from modelplane.api.releases import parse_period
from modelplane.apiserver.usage import USAGE_PREFIX, period, usage_report
from modelplane.backends.prometheus_usage import usage_rows
from modelplane.cli.client import DEFAULT_SERVER, ControlClient
from modelplane.cli.errors import EXIT_USAGE, CliError
from modelplane.cli.models import NamespaceOption, ServerOption
from modelplane.cli.output import table
from modelplane.errors import MetricsUnavailableError

HOUR = 3600.0
HEADERS = ("NAMESPACE", "MODEL", "REPLICA-HOURS", "CPU-HOURS", "GIB-HOURS", "ACCEL-HOURS",
           "REQUESTS", "PROMPT TOKENS", "COMPLETION TOKENS")  # fmt: skip


class Prices(Wire):
    """Unit prices, in one currency; a price left out is 0."""

    replica_hour: NonNegativeFloat = 0
    cpu_core_hour: NonNegativeFloat = 0
    memory_gib_hour: NonNegativeFloat = Field(0, alias="memoryGiBHour")
    accelerator_hour: NonNegativeFloat = 0
    per_million_prompt_tokens: NonNegativeFloat = 0
    per_million_completion_tokens: NonNegativeFloat = 0
    currency: str = ""

    def cost(self, used: dict[str, Any]) -> float:
        """What ``used`` (a report's figures) cost at these prices."""
        return float(
            used["replicaSeconds"] / HOUR * self.replica_hour
            + used["cpuCoreSeconds"] / HOUR * self.cpu_core_hour
            + used["memoryGiBSeconds"] / HOUR * self.memory_gib_hour
            + used["acceleratorSeconds"] / HOUR * self.accelerator_hour
            + used["promptTokens"] / 1e6 * self.per_million_prompt_tokens
            + used["completionTokens"] / 1e6 * self.per_million_completion_tokens
        )


def read_prices(path: Path) -> Prices:
    """The prices in ``path`` (YAML or JSON); a CliError naming each field that is wrong."""
    try:
        document = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise CliError(f"--prices {path}: cannot be read ({exc})", exit_code=EXIT_USAGE) from exc
    try:
        return Prices.model_validate(document)
    except ValidationError as exc:
        problems = "; ".join(str(p) for p in problems_from(exc))
        raise CliError(
            f"--prices {path}: {problems}",
            hint="prices are numbers, 0 or more: replicaHour, cpuCoreHour, memoryGiBHour, "
            "acceleratorHour, perMillionPromptTokens, perMillionCompletionTokens; and currency",
            exit_code=EXIT_USAGE,
        ) from exc


def _hours(seconds: float) -> str:
    return f"{seconds / HOUR:.2f}"


def columns(used: dict[str, Any], prices: Prices | None) -> list[str]:
    found = [_hours(used[f]) for f in ("replicaSeconds", "cpuCoreSeconds", "memoryGiBSeconds",
                                       "acceleratorSeconds")]  # fmt: skip
    found += [str(used["requests"]), str(used["promptTokens"]), str(used["completionTokens"])]
    if prices is not None:
        found.append(f"{prices.cost(used):.2f}")
    return found


def usage(
    namespace: NamespaceOption = "default",
    all_namespaces: Annotated[bool, typer.Option("--all-namespaces", "-A")] = False,
    since: Annotated[str, typer.Option(help="The period: 30d, 12h, 2w.")] = "30d",
    prices: Annotated[
        Path | None,
        typer.Option(help="A YAML or JSON file of unit prices: adds what the usage cost."),
    ] = None,
    output: Annotated[
        str, typer.Option("--output", "-o", help="wide (each revision) or json.")
    ] = "",
    prometheus: Annotated[
        str,
        typer.Option(
            help="Read the usage from this Prometheus (which scrapes the operator and the "
            "gateways of a cluster) instead of the embedded control API.",
            metavar="URL",
        ),
    ] = "",
    server: ServerOption = DEFAULT_SERVER,
) -> None:
    """What each team's Models used: replica-hours, and CPU core-, memory GiB- and
    accelerator-hours requested, requests, prompt and completion tokens; with --prices, cost."""
    if output not in ("", "wide", "json"):
        raise CliError(f"unknown output format {output!r}", hint="use -o wide or json",
                       exit_code=EXIT_USAGE)  # fmt: skip
    try:
        period = parse_period(since)
    except ValueError as exc:
        raise CliError(str(exc), exit_code=EXIT_USAGE) from exc
    priced = read_prices(prices) if prices is not None else None
    if prometheus:
        report = _from_prometheus(prometheus, None if all_namespaces else namespace, period)
    else:
        where = "" if all_namespaces else f"/namespaces/{namespace}"
        query = urlencode({"since": since})
        report = ControlClient(server).call("GET", f"{USAGE_PREFIX}{where}/usage?{query}")
    if priced is not None:
        _add_costs(report, priced)
    if output == "json":
        typer.echo(json.dumps(report, indent=2))
        return
    if not report["teams"]:
        scope = "any namespace" if all_namespaces else namespace
        typer.echo(f"No usage in {scope} in the last {since}.", err=True)
        return
    typer.echo(_table(report, priced, wide=output == "wide"))


def _from_prometheus(url: str, namespace: str | None, since: timedelta) -> dict[str, Any]:
    now = datetime.now(UTC)
    start, step = period(now, since)
    try:
        rows = usage_rows(url, namespace, start, step, now.timestamp())
    except MetricsUnavailableError as exc:
        raise CliError(str(exc), hint="is --prometheus the address of its web API?") from exc
    return usage_report(rows, now, since, timedelta(seconds=step))


def _add_costs(report: dict[str, Any], prices: Prices) -> None:
    """A ``cost`` beside every summary of ``report``, and the prices it came from."""
    report["prices"] = prices.model_dump(by_alias=True)
    report["summary"]["cost"] = prices.cost(report["summary"])
    for team in report["teams"]:
        for part in (team, *team["models"], *(r for m in team["models"] for r in m["revisions"])):
            part["summary"]["cost"] = prices.cost(part["summary"])


def _table(report: dict[str, Any], prices: Prices | None, wide: bool) -> str:
    headers = list(HEADERS)
    if wide:
        headers.insert(2, "REVISION")
    if prices is not None:
        headers.append(f"COST ({prices.currency})" if prices.currency else "COST")
    rows = []
    for team in report["teams"]:
        for model in team["models"]:
            parts = [(r["name"], r["summary"]) for r in model["revisions"]] if wide else []
            for revision, used in [*parts, ("(all)", model["summary"])]:
                rows.append([team["namespace"], model["name"], *([revision] if wide else []),
                             *columns(used, prices)])  # fmt: skip
        rows.append([team["namespace"], "(team)", *(["-"] if wide else []),
                     *columns(team["summary"], prices)])  # fmt: skip
    return table(headers, rows)
