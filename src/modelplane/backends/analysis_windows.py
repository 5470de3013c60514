"""The I/O around the pure rollout analysis, as both backends take it: read the canary's and the
stable revision's windows from the metric source before ``control.planning.plan`` judges them."""

from __future__ import annotations

import logging
from datetime import datetime

from modelplane.api import Model, RolloutPhase
from modelplane.control.analysis import MetricSource, Window
from modelplane.control.planning import AnalysisWindows
from modelplane.errors import MetricsUnavailableError

log = logging.getLogger(__name__)


async def rollout_windows(
    source: MetricSource | None, model: Model, latest: str | None, now: datetime
) -> AnalysisWindows | None:
    """What ``latest`` (the newest stored revision) and the stable revision did since the
    rollout step began.

    Read while a new revision waits to take over too, so a source that keeps readings has one
    at the instant the first step begins. Without numbers (no source, or it is unavailable)
    there are none: no verdict, the step waits."""
    stable, rollout = model.status.stable_revision, model.status.rollout
    on = rollout is not None and rollout.phase in (RolloutPhase.PROGRESSING, RolloutPhase.PAUSED)
    waiting = model.status.canary_revision != latest
    if latest is None or source is None or stable is None or stable == latest:
        return None
    if not (on or waiting):
        return None
    since = rollout.step_started_at if rollout and rollout.step_started_at else now
    try:
        found = await source.windows(model.key, [latest, stable], since, now)
    except MetricsUnavailableError as exc:
        log.warning("rollout analysis of %s waits: %s", model.key, exc)
        return None
    return AnalysisWindows(latest, found.get(latest, Window()), found.get(stable, Window()))
