"""The release API: each team's releases and their DORA figures, computed on request from the
milestones the controller records (nothing is written to answer it).

    GET /apis/releases.modelplane.io/v1alpha1/releases                         every namespace
    GET /apis/releases.modelplane.io/v1alpha1/namespaces/{namespace}/releases  one team

Query: ``since`` (a period: ``30d`` by default, ``12h``, ``2w``), ``undoWindow`` (``24h`` by
default: a release brought back within it counts as failed), ``step`` (the trend's bucket:
``1d``, or ``1w`` for periods over 31 days; at most 400 buckets, so a smaller step is widened).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from modelplane.api.releases import Incident, RevisionHistory, parse_period
from modelplane.api.store import Store
from modelplane.apiserver.http import per_namespace_routes, principal_of, status_response
from modelplane.control.releases import (
    DEFAULT_UNDO_WINDOW,
    Figures,
    Release,
    figures,
    incidents_of,
    releases,
    trend,
)
from modelplane.security.roles import Action

RELEASES_PREFIX = "/apis/releases.modelplane.io/v1alpha1"
DEFAULT_PERIOD = timedelta(days=30)
MAX_BUCKETS = 400


def _seconds(value: timedelta | None) -> float | None:
    return None if value is None else value.total_seconds()


def figures_wire(found: Figures) -> dict[str, Any]:
    return {
        "releases": found.releases,
        "deployments": found.deployments,
        "failed": found.failed,
        "deploymentsPerDay": round(found.deployments_per_day, 4),
        "leadTimeSeconds": _seconds(found.lead_time_median),
        "changeFailureRate": found.change_failure_rate,
        "timeToRestoreSeconds": _seconds(found.time_to_restore_median),
        "incidents": found.incidents,
    }


def release_wire(release: Release) -> dict[str, Any]:
    wire: dict[str, Any] = {
        "namespace": release.namespace,
        "model": release.model,
        "revision": release.revision,
        "started": release.started.isoformat(),
        "outcome": release.outcome.value,
        "finished": release.finished.isoformat() if release.finished else None,
        "reason": release.reason,
        "leadTimeSeconds": _seconds(release.lead_time),
        "timeToRestoreSeconds": _seconds(release.time_to_restore),
    }
    if release.undone_by is not None:
        wire["undoneBy"] = release.undone_by
    if release.freeze_override:
        wire["freezeOverride"] = release.freeze_override
    return wire


def incident_wire(incident: Incident) -> dict[str, Any]:
    restored = incident.restored
    return {
        "namespace": incident.namespace,
        "model": incident.model,
        "revision": incident.revision,
        "started": incident.started.isoformat(),
        "restored": restored.isoformat() if restored is not None else None,
        "reason": incident.reason,
        "timeToRestoreSeconds": _seconds(restored - incident.started if restored else None),
    }


def release_report(
    history: Iterable[RevisionHistory],
    now: datetime,
    since: timedelta = DEFAULT_PERIOD,
    undo_window: timedelta = DEFAULT_UNDO_WINDOW,
    step: timedelta | None = None,
) -> dict[str, Any]:
    """The report both the API and ``modelplane releases --cluster`` give: figures for
    everything, per team (namespace) with its trend, per Model, and every release."""
    step = step or (timedelta(days=1) if since <= timedelta(days=31) else timedelta(weeks=1))
    step = max(step, since / MAX_BUCKETS)  # the report says the step it used
    start = now - since
    history = list(history)
    found, breaches = releases(history, undo_window), incidents_of(history)
    teams: dict[str, list[Release]] = {}
    for release in found:
        teams.setdefault(release.namespace, []).append(release)
    wire_teams = []
    for namespace, theirs in sorted(teams.items()):
        hit = [i for i in breaches if i.namespace == namespace]
        models: dict[str, list[Release]] = {}
        for release in theirs:
            models.setdefault(release.model, []).append(release)
        wire_teams.append(
            {
                "namespace": namespace,
                "summary": figures_wire(figures(theirs, start, now, hit)),
                "trend": [
                    {"start": begins.isoformat(), **figures_wire(f)}
                    for begins, f in trend(theirs, start, now, step, hit)
                ],
                "models": [
                    {
                        "name": name,
                        "summary": figures_wire(
                            figures(ms, start, now, [i for i in hit if i.model == name])
                        ),
                    }
                    for name, ms in sorted(models.items())
                ],
            }
        )
    shown = [r for r in found if r.started >= start or (r.finished or now) >= start]
    lasted = [i for i in breaches if (i.restored or now) >= start]
    return {
        "apiVersion": "releases.modelplane.io/v1alpha1",
        "kind": "ReleaseReport",
        "since": start.isoformat(),
        "until": now.isoformat(),
        "undoWindowSeconds": undo_window.total_seconds(),
        "stepSeconds": step.total_seconds(),
        "summary": figures_wire(figures(found, start, now, breaches)),
        "teams": wire_teams,
        "items": [release_wire(r) for r in shown],
        "incidents": [incident_wire(i) for i in sorted(lasted, key=lambda i: i.started)],
    }


def release_routes(store: Store) -> list[Route]:
    """The release API over ``store``; access control has checked a namespace's read role, a
    list across namespaces shows those the caller may read."""

    async def answer(request: Request, namespace: str | None) -> Response:
        principal = principal_of(request)
        query = request.query_params
        try:
            since = parse_period(query.get("since", "30d"))
            undo_window = parse_period(query.get("undoWindow", "24h"))
            step = parse_period(query["step"]) if "step" in query else None
        except ValueError as exc:
            return status_response(400, "BadRequest", str(exc))
        kept = await asyncio.to_thread(store.release_history, namespace)  # off the loop
        history = [r for r in kept if principal.may(Action.READ, r.namespace)]
        body = release_report(history, datetime.now(UTC), since, undo_window, step)
        return Response(orjson.dumps(body), media_type="application/json")

    return per_namespace_routes(RELEASES_PREFIX, "releases", answer)
