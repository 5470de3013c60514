"""An objective's windows from cumulative request counts read now and then: what the embedded
platform measures an SLO on when no Prometheus keeps the series.

Readings are kept thinner with age (about one per ``RESOLUTION`` of its age), so a month of
windows costs several hundred readings per Model and each window's start is found within 2% of
its length. A window reaching back before the counts began is counted over what
there is, and said to be uncovered.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from datetime import datetime, timedelta

from modelplane.api.counters import RequestCounts
from modelplane.control.slo import Counts, SLOReading, slower_than

RESOLUTION = 0.02
THIN_AFTER = 64


class CountsHistory:
    """Readings of one Model's cumulative counts, which began at ``started`` (from zero)."""

    def __init__(self, started: datetime) -> None:
        self.started = started
        self._readings: list[tuple[datetime, RequestCounts]] = []  # oldest first
        self._thinned = 0  # readings kept by the last thinning: thinned again at twice as many

    def __len__(self) -> int:
        """Readings kept."""
        return len(self._readings)

    def reading(
        self,
        now: datetime,
        current: RequestCounts,
        windows: Sequence[timedelta],
        latency_ms: float | None,
        source: str,
    ) -> SLOReading:
        self._readings.append((now, current))
        if len(self._readings) >= 2 * self._thinned + THIN_AFTER:
            self._thin(now, max(windows, default=timedelta()))
            self._thinned = len(self._readings)
        counts: dict[timedelta, Counts] = {}
        uncovered: list[timedelta] = []
        for span in windows:
            since = now - span
            at_or_before = bisect.bisect_right(self._readings, since, key=lambda r: r[0])
            base = self._readings[at_or_before - 1][1] if at_or_before else None
            if base is None:
                uncovered.append(span)
                # Back to when counting began, or to the oldest reading kept.
                base = None if since < self.started else self._readings[0][1]
            counts[span] = _between(base, current, latency_ms)
        return SLOReading(counts, source, tuple(uncovered))

    def _thin(self, now: datetime, longest: timedelta) -> None:
        """Keep the oldest reading of each slot of absolute time, a slot's length the power of
        two seconds nearest below ``RESOLUTION`` of its age: as readings age, slots merge in
        pairs, so what was kept stays kept until a coarser slot holds an older one."""
        start = max((at for at, _ in self._readings if at <= now - longest), default=None)
        kept, slots = [], set()
        for at, found in self._readings:
            if start is not None and at < start:
                continue  # older than the longest window's base: never asked for again
            size = 2 ** math.floor(math.log2(max((now - at).total_seconds() * RESOLUTION, 1.0)))
            slot = (size, math.floor(at.timestamp() / size))
            if slot not in slots or at == now:
                slots.add(slot)
                kept.append((at, found))
        self._readings = kept


def _between(
    before: RequestCounts | None, after: RequestCounts, latency_ms: float | None
) -> Counts:
    base = before.buckets if before else (0,) * len(after.buckets)
    deltas = [b - a for a, b in zip(base, after.buckets, strict=True)]
    return Counts(
        total=after.requests - (before.requests if before else 0),
        bad=after.errors - (before.errors if before else 0),
        slow=slower_than(after.bounds_ms, deltas, latency_ms) if latency_ms is not None else None,
    )
