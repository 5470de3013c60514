"""The autoscaler: replicas follow in-flight requests per replica, with scale to zero.

Two windows over the same samples, as Knative's autoscaler does: a long *stable* window sets the
replica count, and a short *panic* window reacts to bursts. While the panic window asks for at
least twice the current capacity, the autoscaler is in panic mode: it scales up at once and does
not scale down. With ``minReplicas: 0`` a revision idle for ``scaleToZeroAfterSeconds`` goes to
zero; any demand (a request held by the gateway) brings it back to one at least.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from modelplane.api import Scaling

STABLE_WINDOW = timedelta(seconds=60)
PANIC_WINDOW = timedelta(seconds=6)
PANIC_THRESHOLD = 2.0
SAMPLE_EVERY = timedelta(seconds=0.5)


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


@dataclass(frozen=True)
class Demand:
    """What a backend saw of demand for a Model's newest revision."""

    samples: tuple[Sample, ...] = ()
    last_request: datetime | None = None
    born: datetime | None = None  # when the revision was created (or first seen)
    # False while nobody reports demand (a cluster's gateways before their first report): idle
    # and unknown cannot be told apart, so nothing is scaled to zero or down.
    known: bool = True
    scaled_to: int | None = None  # while not known: what the revision was last set to run


@dataclass
class DemandMemory:
    """A backend's memory of one Model's demand between passes: one sample per interval over the
    stable window, however often it is asked; time is passed in."""

    samples: deque[Sample] = field(default_factory=deque)
    revision: str = ""  # the newest revision, and when it was first seen
    born: datetime | None = None

    def observe(
        self,
        revision: str,
        in_flight: float,
        last_request: datetime | None,
        now: datetime,
        born: datetime | None = None,
    ) -> Demand:
        """Record ``in_flight`` (running plus held) for ``revision``; ``born``: when it was
        created, if known (else: when first observed)."""
        if not self.samples or now - self.samples[-1].time >= SAMPLE_EVERY:
            self.samples.append(Sample(now, in_flight))
        while self.samples and self.samples[0].time < now - STABLE_WINDOW:
            self.samples.popleft()
        if self.revision != revision:
            self.revision, self.born = revision, born or now
        return Demand(tuple(self.samples), last_request, self.born)


def autoscaled(scaling: Scaling) -> bool:
    return scaling.min_replicas != scaling.max_replicas or scaling.min_replicas == 0


def replicas_for(scaling: Scaling, demand: Demand, current: int, now: datetime) -> int:
    """Replicas for the newest revision, which runs ``current`` now."""
    least = min(max(scaling.min_replicas, 1), scaling.max_replicas)
    if not autoscaled(scaling):
        return least
    if not demand.known:  # keep what runs, rather than wake every Model at zero or stop busy ones
        if demand.scaled_to is None:
            return least
        return min(max(demand.scaled_to, scaling.min_replicas), scaling.max_replicas)
    # A new revision counts as just used: it starts, proves it loads, then may scale to zero.
    latest = max((t for t in (demand.last_request, demand.born) if t is not None), default=None)
    return decide(scaling, demand.samples, current, latest, now).replicas
