"""Which events a reconcile pass is worth, given what was reported before: pure, shared by the
embedded controller and the operator so both tell the same story."""

from __future__ import annotations

from dataclasses import dataclass, field

from modelplane.api import ModelStatus
from modelplane.control.conditions import STALLED, condition
from modelplane.control.reconcile import Plan
from modelplane.control.rollout import Event


@dataclass(frozen=True)
class Reported:
    """What a backend last told about one model."""

    traffic: dict[str, int] = field(default_factory=dict)
    stalled: bool = False
    desired: int | None = None
    held_back: bool = False  # by the namespace's replica cap (said once per episode)


def reported_from(status: ModelStatus) -> Reported:
    """What a previous run must have reported, read back from the stored status: a restarted
    backend does not announce again what is already known."""
    traffic = {r.name: r.traffic for r in status.revisions if r.traffic}
    stalled = condition(status.conditions, STALLED)
    return Reported(traffic, stalled is not None and stalled.status.value == "True")


def events(plan: Plan, desired: int, before: Reported) -> tuple[list[Event], Reported]:
    found: list[Event] = []
    shown = {name: weight for name, weight in plan.traffic.items() if weight}
    if shown and shown != before.traffic:
        split = ", ".join(f"{name} {weight}%" for name, weight in shown.items())
        found.append(Event("Normal", "TrafficShifted", split))
    if plan.event is not None:
        found.append(plan.event)
    stalled = condition(plan.status.conditions, STALLED)
    is_stalled = stalled is not None and stalled.status.value == "True"
    if stalled is not None and is_stalled and not before.stalled and plan.event is None:
        found.append(Event("Warning", stalled.reason, stalled.message))
    if before.desired is not None and desired != before.desired:
        found.append(Event("Normal", "Scaled", f"replicas {before.desired} -> {desired}"))
    return found, Reported(shown or before.traffic, is_stalled, desired, before.held_back)
