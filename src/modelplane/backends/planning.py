"""One reconcile step as both backends take it: read the rollout's analysis windows from the
metric source (the I/O around the pure analysis), pick up a user's rollout command, plan with
``control.reconcile``, and record the command as handled. And how a gateway routes a model
whose status says where its traffic goes."""

from __future__ import annotations

import logging
from datetime import datetime

from modelplane.api import Model, ModelSpec, ModelStatus, RolloutPhase
from modelplane.control.analysis import MetricSource, Window
from modelplane.control.reconcile import Plan, ReplicaView, RevisionRef, reconcile
from modelplane.control.rollout import pending_command
from modelplane.errors import MetricsUnavailableError

log = logging.getLogger(__name__)


async def plan(
    model: Model,
    latest: RevisionRef,
    replicas: list[ReplicaView],
    desired: int,
    now: datetime,
    url: str,
    source: MetricSource | None,
) -> Plan:
    windows = await rollout_windows(source, model, latest.name, now)
    command, annotation = pending_command(model)
    found = reconcile(model, latest, replicas, desired, now, url, windows, command)
    if command is not None and found.status.rollout is not None:
        found.status.rollout.last_command = annotation  # acted on once
    return found


async def rollout_windows(
    source: MetricSource | None, model: Model, latest: str, now: datetime
) -> tuple[Window, Window]:
    """The canary's and the stable revision's measurements since the rollout step began.

    Read while a new revision waits to take over too, so a source that keeps readings has one
    at the instant the first step begins. Without numbers (no source, or it is unavailable)
    the windows are empty: no verdict, the step waits."""
    stable, rollout = model.status.stable_revision, model.status.rollout
    on = rollout is not None and rollout.phase in (RolloutPhase.PROGRESSING, RolloutPhase.PAUSED)
    waiting = model.status.canary_revision != latest
    if source is None or stable is None or stable == latest or not (on or waiting):
        return Window(), Window()
    since = rollout.step_started_at if rollout and rollout.step_started_at else now
    try:
        found = await source.windows(model.key, [latest, stable], since, now)
    except MetricsUnavailableError as exc:
        log.warning("rollout analysis of %s waits: %s", model.key, exc)
        return Window(), Window()
    return found.get(latest, Window()), found.get(stable, Window())


Shadow = tuple[str, float, str]  # (canary revision, percent of requests mirrored, task)


def route_policy(spec: ModelSpec, status: ModelStatus) -> tuple[Shadow | None, str | None]:
    """The revision a gateway mirrors requests to, and the revision on trial (whose failed
    requests are retried on the others), while a canary rollout runs."""
    phase = status.rollout.phase if status.rollout else None
    canary = status.canary_revision
    if canary is None or phase not in (RolloutPhase.PROGRESSING, RolloutPhase.PAUSED):
        return None, None
    percent = spec.rollout.analysis.shadow_percent
    mirrored = phase is RolloutPhase.PROGRESSING and percent > 0
    return ((canary, percent, spec.task.value) if mirrored else None), canary
