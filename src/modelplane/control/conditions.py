"""Kubernetes-style conditions: set one without losing when it last changed."""

from __future__ import annotations

from datetime import datetime

from modelplane.api import Condition, ConditionStatus, ModelStatus

READY = "Ready"
RECONCILING = "Reconciling"
STALLED = "Stalled"
ROLLOUT_PROGRESSING = "RolloutProgressing"


def set_condition(
    conditions: list[Condition],
    type_: str,
    status: bool,
    reason: str,
    message: str,
    generation: int | None,
    now: datetime,
) -> list[Condition]:
    """A copy of ``conditions`` with ``type_`` set; the transition time moves only on a flip."""
    value = ConditionStatus.TRUE if status else ConditionStatus.FALSE
    previous = next((c for c in conditions if c.type == type_), None)
    changed_at = previous.last_transition_time if previous and previous.status == value else now
    updated = Condition(
        type=type_,
        status=value,
        reason=reason,
        message=message,
        last_transition_time=changed_at,
        observed_generation=generation,
    )
    return [c for c in conditions if c.type != type_] + [updated]


def condition(conditions: list[Condition], type_: str) -> Condition | None:
    return next((c for c in conditions if c.type == type_), None)


def refused(
    status: ModelStatus, generation: int | None, reason: str, message: str, now: datetime
) -> ModelStatus:
    """A copy of ``status``: not Ready and Stalled for ``reason``, as a Model whose spec (or
    child) is refused stands; what ran before keeps running."""
    found = status.model_copy(deep=True)
    found.observed_generation = generation
    for type_, value in ((READY, False), (STALLED, True), (RECONCILING, False)):
        found.conditions = set_condition(
            found.conditions, type_, value, reason, message, generation, now
        )
    return found
