"""The autoscaler: replicas follow in-flight requests per replica, with scale to zero.

Two windows over the same samples, as Knative's autoscaler does: a long *stable* window sets the
replica count, and a short *panic* window reacts to bursts. While the panic window asks for at
least twice the current capacity, the autoscaler is in panic mode: it scales up at once and does
not scale down. With ``minReplicas: 0`` a revision idle for ``scaleToZeroAfterSeconds`` goes to
zero; any demand (a request held by the gateway) brings it back to one at least.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from modelplane.api import Scaling

STABLE_WINDOW = timedelta(seconds=60)
PANIC_WINDOW = timedelta(seconds=6)
PANIC_THRESHOLD = 2.0


@dataclass(frozen=True)
class Sample:
    """In-flight requests (running plus held) summed over a revision's replicas at a time."""

    time: datetime
    in_flight: float


@dataclass(frozen=True)
class Decision:
    replicas: int
    panic: bool
    reason: str


def _average(samples: Sequence[Sample], since: datetime) -> float | None:
    recent = [s.in_flight for s in samples if s.time >= since]
    return sum(recent) / len(recent) if recent else None


def decide(
    scaling: Scaling,
    samples: Sequence[Sample],
    current: int,
    last_request: datetime | None,
    now: datetime,
    panicking_until: datetime | None = None,
) -> Decision:
    """How many replicas a revision should have now."""
    stable = _average(samples, now - STABLE_WINDOW) or 0.0
    panic = _average(samples, now - PANIC_WINDOW) or 0.0
    target = scaling.target_in_flight
    want_stable = math.ceil(stable / target)
    want_panic = math.ceil(panic / target)
    in_panic = (current > 0 and panic / target >= PANIC_THRESHOLD * current) or (
        panicking_until is not None and now < panicking_until
    )
    if in_panic:
        replicas, reason = max(want_panic, current), "panic: burst above twice the capacity"
    else:
        replicas, reason = want_stable, f"average in-flight {stable:.1f}, target {target}"
    idle_for = (now - last_request) if last_request else None
    idle = idle_for is None or idle_for >= timedelta(seconds=scaling.scale_to_zero_after_seconds)
    busy_now = bool(samples) and max(samples, key=lambda s: s.time).in_flight > 0
    if scaling.min_replicas == 0 and idle and not busy_now:
        # Idle is judged by the last request, not by the windows' averages, which remember a
        # burst for a minute: scaleToZeroAfterSeconds means what it says.
        reason = f"idle for {scaling.scale_to_zero_after_seconds}s: scaled to zero"
        return Decision(0, False, reason)
    bounded = min(max(replicas, scaling.min_replicas, 1), scaling.max_replicas)
    return Decision(bounded, in_panic, reason)
