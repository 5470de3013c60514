"""The usage API: what each team's Models used, from the platform's usage record (kept per
hour; ``backends/local/usage.py``), summed per team, Model and revision, with a trend.

    GET /apis/usage.modelplane.io/v1alpha1/usage                         every namespace
    GET /apis/usage.modelplane.io/v1alpha1/namespaces/{namespace}/usage  one team

Query: ``since`` (a period: ``30d`` by default; the record is kept by the hour, so the period
starts at the beginning of the hour it falls in) and ``step`` (the trend's bucket: ``1d``, or
``1w`` for periods over 31 days; at least an hour, at most 400 buckets).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from modelplane.api.releases import parse_period
from modelplane.apiserver.http import (
    namespace_name,
    per_namespace_routes,
    principal_of,
    status_response,
)
from modelplane.backends.usage_rollup import HOUR, Key, Usage, hour_of
from modelplane.security.roles import Action

USAGE_PREFIX = "/apis/usage.modelplane.io/v1alpha1"
DEFAULT_PERIOD = timedelta(days=30)
MAX_BUCKETS = 400


class UsageRecord(Protocol):
    """The platform's usage record, as the control API reads it."""

    async def read(
        self, namespace: str | None, since_hour: int, step: int
    ) -> Iterable[tuple[Key, Usage]]:
        """The kept hours of ``namespace`` (None: of every one) from ``since_hour`` on, summed
        by ``step`` seconds (whole hours), each keyed by the first second of its step; read
        without holding up the event loop."""
        ...

    def flush(self) -> None:
        """Write what accrued in memory (before a backup)."""
        ...


def usage_wire(used: Usage) -> dict[str, Any]:
    return {
        "replicaSeconds": round(used.replica_seconds, 3),
        "cpuCoreSeconds": round(used.cpu_core_seconds, 3),
        "memoryGiBSeconds": round(used.memory_gib_seconds, 3),
        "acceleratorSeconds": round(used.accelerator_seconds, 3),
        "requests": used.requests,
        "clientErrors": used.client_errors,
        "serverErrors": used.server_errors,
        "promptTokens": used.prompt_tokens,
        "completionTokens": used.completion_tokens,
    }


def _summed(rows: Iterable[tuple[Key, Usage]]) -> Usage:
    total = Usage()
    for _, used in rows:
        total.add(used)
    return total


def _grouped(rows: Iterable[tuple[Key, Usage]], part: int) -> dict[Any, list[tuple[Key, Usage]]]:
    groups: dict[Any, list[tuple[Key, Usage]]] = {}
    for row in rows:
        groups.setdefault(row[0][part], []).append(row)
    return dict(sorted(groups.items()))


def period(now: datetime, since: timedelta, step: timedelta | None = None) -> tuple[int, int]:
    """The report's first second (the first of the hour ``since`` before ``now`` falls in)
    and its step in seconds: whole hours, at most MAX_BUCKETS of them."""
    start = hour_of((now - since).timestamp())
    step = step or (timedelta(days=1) if since <= timedelta(days=31) else timedelta(weeks=1))
    least = -(-(int(now.timestamp()) - start) // MAX_BUCKETS)
    return start, -(-max(int(step.total_seconds()), least) // HOUR) * HOUR


def usage_report(
    rows: Iterable[tuple[Key, Usage]],
    now: datetime,
    since: timedelta = DEFAULT_PERIOD,
    step: timedelta | None = None,
) -> dict[str, Any]:
    """Usage in the period up to ``now`` (``rows`` by the hour, or summed by ``period``'s
    step): the sum, each team's with its trend per step, each Model's and each revision's."""
    start, step_seconds = period(now, since, step)
    shown = [row for row in rows if row[0][3] >= start]
    buckets = range(start, int(now.timestamp()) + 1, step_seconds)
    teams = []
    for namespace, theirs in _grouped(shown, 0).items():
        trend = [Usage() for _ in buckets]
        for (_, _, _, hour), used in theirs:
            trend[min((hour - start) // step_seconds, len(trend) - 1)].add(used)
        teams.append({
            "namespace": namespace,
            "summary": usage_wire(_summed(theirs)),
            "trend": [{"start": _iso(at), **usage_wire(t)} for at, t in zip(buckets, trend,
                                                                            strict=True)],
            "models": [
                {"name": name, "summary": usage_wire(_summed(model)),
                 "revisions": [{"name": revision, "summary": usage_wire(_summed(kept))}
                               for revision, kept in _grouped(model, 2).items()]}
                for name, model in _grouped(theirs, 1).items()
            ],
        })  # fmt: skip
    return {
        "apiVersion": "usage.modelplane.io/v1alpha1",
        "kind": "UsageReport",
        "since": _iso(start),
        "until": now.isoformat(),
        "stepSeconds": step_seconds,
        "summary": usage_wire(_summed(shown)),
        "teams": teams,
    }


def _iso(moment: int) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat()


def usage_routes(kept: UsageRecord) -> list[Route]:
    """The usage API over ``kept``; access control has checked a namespace's read role, a list
    across namespaces shows those the caller may read."""

    async def answer(request: Request, namespace: str | None) -> Response:
        if namespace is not None and not namespace_name(namespace):
            message = f"{namespace!r} is not a namespace name (an RFC 1123 label)"
            return status_response(422, "Invalid", message)
        principal = principal_of(request)
        query = request.query_params
        try:
            since = parse_period(query.get("since", "30d"))
            step = parse_period(query["step"]) if "step" in query else None
        except ValueError as exc:
            return status_response(400, "BadRequest", str(exc))
        now = datetime.now(UTC)
        start, step_seconds = period(now, since, step)
        found = await kept.read(namespace, start, step_seconds)  # summed by step, not by hour
        readable = [row for row in found if principal.may(Action.READ, row[0][0])]
        body = usage_report(readable, now, since, step)
        return Response(orjson.dumps(body), media_type="application/json")

    return per_namespace_routes(USAGE_PREFIX, "usage", answer)
