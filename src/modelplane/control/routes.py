"""How a gateway routes a Model while a canary rolls out, from what its status says: pure,
shared by the embedded controller and the cluster gateway's discovery."""

from __future__ import annotations

from modelplane.api import ModelSpec, ModelStatus, RolloutPhase
from modelplane.api.routing import ShadowRoute


def route_policy(spec: ModelSpec, status: ModelStatus) -> tuple[ShadowRoute | None, str | None]:
    """The revision a gateway mirrors requests to, and the revision on trial (whose failed
    requests are retried on the others), while a canary rollout runs."""
    phase = status.rollout.phase if status.rollout else None
    canary = status.canary_revision
    if canary is None or phase not in (RolloutPhase.PROGRESSING, RolloutPhase.PAUSED):
        return None, None
    percent = spec.rollout.analysis.shadow_percent
    mirrored = phase is RolloutPhase.PROGRESSING and percent > 0
    return ((canary, percent, spec.task.value) if mirrored else None), canary
