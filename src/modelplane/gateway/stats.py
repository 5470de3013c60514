"""Per-revision request counters kept by the gateway, read by the rollout analysis.

Cumulative, like Prometheus counters: the analysis takes a reading when a step starts and
compares it with later readings, so nothing here knows about windows or steps.
"""

from __future__ import annotations

import bisect

Reading = tuple[int, int, tuple[float, ...], tuple[int, ...], int, float]

# Upper bounds (ms) of the latency buckets; a last bucket catches everything slower.
LATENCY_BOUNDS_MS = (
    0.5,
    1,
    2,
    3,
    5,
    7.5,
    10,
    15,
    20,
    30,
    50,
    75,
    100,
    150,
    200,
    300,
    500,
    750,
    1000,
    2000,
    5000,
)


class RevisionStats:
    def __init__(self) -> None:
        self.requests = 0
        self.errors = 0
        self.buckets = [0] * (len(LATENCY_BOUNDS_MS) + 1)
        self.compared = 0  # shadow comparisons with the stable revision's answers
        self.disagreement = 0.0  # their summed disagreement, each 0 (same) .. 1 (different)

    def record(self, seconds: float, failed: bool) -> None:
        self.requests += 1
        if failed:
            self.errors += 1
        self.buckets[bisect.bisect_left(LATENCY_BOUNDS_MS, seconds * 1000)] += 1

    def compare(self, disagreement: float) -> None:
        self.compared += 1
        self.disagreement += disagreement

    def reading(self) -> Reading:
        """requests, errors, bucket bounds (ms), bucket counts, comparisons, summed disagreement."""
        return (
            self.requests, self.errors, LATENCY_BOUNDS_MS, tuple(self.buckets),
            self.compared, self.disagreement,
        )  # fmt: skip
