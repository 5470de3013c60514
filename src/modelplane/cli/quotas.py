"""``modelplane quota``: the limits the gateway enforces per tenant (namespace)."""

from __future__ import annotations

from typing import Annotated

import typer

from modelplane.cli.client import DEFAULT_SERVER, ControlClient
from modelplane.cli.errors import EXIT_USAGE, CliError
from modelplane.cli.models import ServerOption


def build() -> typer.Typer:
    app = typer.Typer(
        help="Per-namespace quotas: requests per second, tokens per minute, concurrent "
        "requests, replicas, and the priority of requests waiting for a saturated model."
    )
    app.command("set")(set_quota)
    app.command("list")(list_quotas)
    app.command("clear")(clear)
    return app


def _said(item: dict[str, object]) -> str:
    rps, concurrent = item.get("requestsPerSecond"), item.get("concurrentRequests")
    replicas, tokens = item.get("maxReplicas"), item.get("tokensPerMinute")
    priority = item.get("priority")
    parts = [f"{rps:g} requests/s" if isinstance(rps, float | int) else "",
             f"{tokens} tokens/min" if tokens is not None else "",
             f"{concurrent} concurrent" if concurrent is not None else "",
             f"at most {replicas} replicas" if replicas is not None else "",
             f"priority {priority}" if priority is not None else ""]  # fmt: skip
    return ", ".join(p for p in parts if p) or "no limits"


def set_quota(
    namespace: Annotated[str, typer.Argument(help="The tenant's namespace.")],
    rps: Annotated[
        float | None, typer.Option("--rps", help="Requests per second (a second of burst).")
    ] = None,
    concurrency: Annotated[int | None, typer.Option(help="Requests in flight at once.")] = None,
    max_replicas: Annotated[
        int | None, typer.Option(help="Replicas of all the namespace's Models together.")
    ] = None,
    tpm: Annotated[
        int | None,
        typer.Option("--tpm", help="Model tokens per minute (prompt and completion; OpenAI API)."),
    ] = None,
    priority: Annotated[
        str | None,
        typer.Option(
            help="interactive (default) or batch: how the namespace's requests wait when a "
            "model is saturated (an API key's own priority comes first)."
        ),
    ] = None,
    server: ServerOption = DEFAULT_SERVER,
) -> None:
    """Set a namespace's quota (replacing the one it had); over it, requests get 429."""
    given = (("requestsPerSecond", rps), ("concurrentRequests", concurrency),
             ("maxReplicas", max_replicas), ("tokensPerMinute", tpm),
             ("priority", priority))  # fmt: skip
    body = {k: v for k, v in given if v is not None}
    if not body:
        raise CliError(
            "give --rps, --tpm, --concurrency, --max-replicas or --priority", exit_code=EXIT_USAGE
        )
    done = ControlClient(server).call("PUT", f"/quotas/{namespace}", body)
    typer.echo(f"quota of {namespace}: {_said(done)}")


def list_quotas(server: ServerOption = DEFAULT_SERVER) -> None:
    """Every namespace with a quota."""
    items = ControlClient(server).call("GET", "/quotas")["items"]
    if not items:
        typer.echo("no quotas: every namespace is unlimited")
    for item in items:
        typer.echo(f"{item['namespace']:<30}{_said(item)}")


def clear(
    namespace: Annotated[str, typer.Argument(help="The tenant's namespace.")],
    server: ServerOption = DEFAULT_SERVER,
) -> None:
    """Lift a namespace's quota."""
    ControlClient(server).call("DELETE", f"/quotas/{namespace}")
    typer.echo(f"quota of {namespace} lifted")
