"""``modelplane top``: a live terminal view of every model's revisions, traffic and load.

Models, revisions, weights and replicas come from the control API; requests per second,
errors, latency percentiles and requests in flight from two scrapes of the gateway's
``/metrics``, ``--interval`` apart."""

from __future__ import annotations

import time
from typing import Annotated

import httpx
import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table

from modelplane.api import Model
from modelplane.cli.client import DEFAULT_SERVER, ControlClient
from modelplane.cli.errors import CliError
from modelplane.cli.inference import DEFAULT_GATEWAY
from modelplane.cli.traffic import Rates, Scrape, parse, rates

COLUMNS = ("MODEL", "REVISION", "TRAFFIC", "REPLICAS", "REQ/S", "ERRORS", "P50", "P99", "IN-FLIGHT")


def top(
    interval: Annotated[float, typer.Option(help="Seconds between refreshes.")] = 2.0,
    once: Annotated[
        bool, typer.Option(help="Print one view (after one interval) and exit; for scripts.")
    ] = False,
    namespace: Annotated[
        str | None, typer.Option("--namespace", "-n", help="Only this namespace; default: all.")
    ] = None,
    server: Annotated[
        str, typer.Option("--server", help="Control API URL.", envvar="MODELPLANE_SERVER")
    ] = DEFAULT_SERVER,
    gateway: Annotated[
        str, typer.Option(help="Gateway URL.", envvar="MODELPLANE_GATEWAY")
    ] = DEFAULT_GATEWAY,
) -> None:
    """Show models, revisions, traffic, requests/s, errors, p50/p99, in-flight and replicas."""
    if interval <= 0:
        raise CliError("--interval must be positive")
    client = ControlClient(server)
    scope = namespace
    metrics_url = f"{gateway.rstrip('/')}/metrics"
    with httpx.Client(timeout=10) as http:
        before = _scrape(http, metrics_url)
        if once:
            time.sleep(interval)
            after = _scrape(http, metrics_url)
            Console(width=160).print(view(client.list_models(scope), rates(before, after)))
            return
        with Live(Table(), auto_refresh=False, screen=False) as live:
            while True:
                time.sleep(interval)
                after = _scrape(http, metrics_url)
                live.update(view(client.list_models(scope), rates(before, after)), refresh=True)
                before = after


def _scrape(http: httpx.Client, url: str) -> Scrape:
    try:
        reply = http.get(url)
        reply.raise_for_status()
    except httpx.HTTPError as exc:
        raise CliError(f"cannot read the gateway's metrics at {url}: {exc}") from exc
    return parse(reply.text, time.monotonic())


def view(models: list[Model], found: dict[tuple[str, str], Rates]) -> Table:
    table = Table(*COLUMNS, box=None, header_style="bold", pad_edge=False)
    for model in sorted(models, key=lambda m: m.key):
        revisions = model.status.revisions or []
        if not revisions:
            table.add_row(model.key, "-", "-", "-", *["-"] * 5)
        for revision in revisions:
            load = found.get((model.key, revision.name))
            table.add_row(
                model.key,
                revision.name,
                f"{revision.traffic}%",
                f"{revision.ready_replicas}/{revision.replicas}",
                *_figures(load),
            )
    return table


def _figures(load: Rates | None) -> list[str]:
    if load is None:
        return ["0.0", "-", "-", "-", "0"]
    error = "-" if load.error_rate is None else f"{load.error_rate:.1%}"
    return [
        f"{load.requests_per_second:.1f}",
        error,
        _ms(load.p50_seconds),
        _ms(load.p99_seconds),
        f"{load.in_flight:.0f}",
    ]


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f}ms"
