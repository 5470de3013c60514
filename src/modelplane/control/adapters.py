"""The ``AdaptersReady`` condition of a Model with LoRA adapters: True while none of its listed
adapters is known to fail, False naming each that a replica could not fetch or load, and why.

Adapters load on their first request, so a failure is known once a request met it: replicas
report it on their answers, the gateway keeps it and the backend observes it
(``Observed.adapter_failures``). The condition is absent from Models without adapters.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from modelplane.api import Condition, ConditionStatus, ModelSpec
from modelplane.control.conditions import condition, set_condition
from modelplane.control.rollout import Event

ADAPTERS_READY = "AdaptersReady"
ADAPTER_UNAVAILABLE = "AdapterUnavailable"


def adapter_conditions(
    spec: ModelSpec,
    conditions: list[Condition],
    failures: Mapping[str, str],
    generation: int | None,
    now: datetime,
) -> list[Condition]:
    if not spec.adapters:
        return [c for c in conditions if c.type != ADAPTERS_READY]
    listed = [a.name for a in spec.adapters]
    failed = [failures[name] for name in sorted(failures) if name in listed]
    if failed:
        message = "; ".join(failed) + " (the base model and the other adapters serve on)"
        return set_condition(
            conditions, ADAPTERS_READY, False, ADAPTER_UNAVAILABLE, message, generation, now
        )
    message = f"{len(listed)} adapter(s) listed, each loaded on its first request; none failed"
    return set_condition(
        conditions, ADAPTERS_READY, True, "AdaptersListed", message, generation, now
    )


def adapter_events(before: Sequence[Condition], after: Sequence[Condition]) -> list[Event]:
    """A failure said when it is first seen or what failed changes."""
    was, now = condition(list(before), ADAPTERS_READY), condition(list(after), ADAPTERS_READY)
    if now is None or now.status is not ConditionStatus.FALSE:
        return []
    if was is not None and was.status is ConditionStatus.FALSE and was.message == now.message:
        return []
    return [Event("Warning", now.reason, now.message)]
