"""The autoscaler: replicas follow a metric per replica, with scale to zero.

The metric is ``spec.scaling.metric``: requests in flight (the gateways' count, any model), or
what the replicas' engines report of their saturation (requests waiting for a slot, KV-cache
use, tokens generated per second). A reported metric is summed over the revision's replicas;
while no fresh report is to be had, the autoscaler scales on in-flight requests instead, and
``Demand.reading`` says why.

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
from modelplane.api.model import REPORTED_METRICS

STABLE_WINDOW = timedelta(seconds=60)
PANIC_WINDOW = timedelta(seconds=6)
PANIC_THRESHOLD = 2.0
SAMPLE_EVERY = timedelta(seconds=0.5)


@dataclass(frozen=True)
class Sample:
    """In-flight requests (running plus held) summed over a revision's replicas at a time, and
    the reported metric summed likewise (None: no fresh report)."""

    time: datetime
    in_flight: float
    reported: float | None = None


@dataclass(frozen=True)
class Reading:
    """A reported metric as a revision's replicas last reported it, summed over them (those
    not heard from yet counted at the others' average); or, with no value, why not."""

    value: float | None = None
    missing: str = ""
    replicas: int = 0  # ready replicas expected to report


@dataclass(frozen=True)
class Decision:
    replicas: int
    panic: bool
    reason: str


def _average(values: Sequence[tuple[datetime, float]], since: datetime) -> float | None:
    recent = [value for time, value in values if time >= since]
    return sum(recent) / len(recent) if recent else None


def _measured(
    scaling: Scaling, samples: Sequence[Sample]
) -> tuple[list[tuple[datetime, float]], float, str]:
    """The values to scale on, their target per replica, and what they are: the reported
    metric while its latest sample has a value, else in-flight requests."""
    latest = max(samples, key=lambda s: s.time) if samples else None
    if scaling.metric in REPORTED_METRICS and latest is not None and latest.reported is not None:
        values = [(s.time, s.reported) for s in samples if s.reported is not None]
        return values, scaling.aim, f"reported {scaling.metric.value}"
    values = [(s.time, s.in_flight) for s in samples]
    return values, float(scaling.target_in_flight), "in-flight"


def decide(
    scaling: Scaling,
    samples: Sequence[Sample],
    current: int,
    last_request: datetime | None,
    now: datetime,
    panicking_until: datetime | None = None,
) -> Decision:
    """How many replicas a revision should have now."""
    values, target, measure = _measured(scaling, samples)
    stable = _average(values, now - STABLE_WINDOW) or 0.0
    panic = _average(values, now - PANIC_WINDOW) or 0.0
    want_stable = math.ceil(stable / target)
    want_panic = math.ceil(panic / target)
    in_panic = (current > 0 and panic / target >= PANIC_THRESHOLD * current) or (
        panicking_until is not None and now < panicking_until
    )
    if in_panic:
        replicas, reason = (
            max(want_panic, current),
            f"panic: {measure} burst above twice the capacity",
        )
    else:
        replicas, reason = want_stable, f"average {measure} {stable:.1f}, target {target:g}"
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
    reading: Reading | None = None  # the reported metric's latest; None: scaled on in-flight


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
        reading: Reading | None = None,
    ) -> Demand:
        """Record ``in_flight`` (running plus held) for ``revision``, and the reported metric's
        ``reading`` if it scales on one; ``born``: when it was created, if known (else: when
        first observed)."""
        if not self.samples or now - self.samples[-1].time >= SAMPLE_EVERY:
            reported = reading.value if reading is not None else None
            self.samples.append(Sample(now, in_flight, reported))
        while self.samples and self.samples[0].time < now - STABLE_WINDOW:
            self.samples.popleft()
        if self.revision != revision:
            self.revision, self.born = revision, born or now
        return Demand(tuple(self.samples), last_request, self.born, reading=reading)


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
