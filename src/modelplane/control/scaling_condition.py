"""Whether a reported scaling metric drives the autoscaler: the ``ScalingActive`` condition, and
the events when the replicas' reports go missing and come back.

Only a Model autoscaled on a metric its replicas report carries the condition (as a
HorizontalPodAutoscaler says ``ScalingActive``); one scaled on in-flight requests has no reports
to miss. ``planning`` sets it each pass from ``Demand.reading``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from modelplane.api import Condition, ConditionStatus, Scaling
from modelplane.control.autoscaling import Reading, autoscaled
from modelplane.control.conditions import condition, set_condition
from modelplane.control.rollout import Event

SCALING_ACTIVE = "ScalingActive"
REPORTED = "MetricReported"
MISSING = "MetricMissing"  # replicas run, but none reports the metric freshly
NO_REPLICAS = "NoReadyReplicas"  # nothing runs to report: held requests wake it as always


def scaling_conditions(
    scaling: Scaling,
    reading: Reading | None,
    conditions: list[Condition],
    generation: int | None,
    now: datetime,
) -> list[Condition]:
    """``conditions`` with ``ScalingActive`` as ``reading`` says; without a reported metric
    (or a reading), none."""
    if reading is None or not autoscaled(scaling):
        return [c for c in conditions if c.type != SCALING_ACTIVE]
    metric, fallback = scaling.metric.value, f"targetInFlight {scaling.target_in_flight}"
    if reading.value is not None:
        said = f"scaling on {metric} reported by the replicas, target {scaling.aim:g} per replica"
        return set_condition(conditions, SCALING_ACTIVE, True, REPORTED, said, generation, now)
    reason = NO_REPLICAS if reading.replicas == 0 else MISSING
    said = f"{reading.missing}; scaling on in-flight requests ({fallback}) meanwhile"
    return set_condition(conditions, SCALING_ACTIVE, False, reason, said, generation, now)


def scaling_events(before: Sequence[Condition], after: Sequence[Condition]) -> list[Event]:
    """Reports missing from running replicas, said once; and once when they are back."""
    was, now = condition(list(before), SCALING_ACTIVE), condition(list(after), SCALING_ACTIVE)
    if now is None or (was is not None and was.reason == now.reason):
        return []
    if now.reason == MISSING:
        return [Event("Warning", "ScalingMetricMissing", now.message)]
    if now.status is ConditionStatus.TRUE and was is not None and was.reason == MISSING:
        return [Event("Normal", "ScalingMetricReported", now.message)]
    return []
