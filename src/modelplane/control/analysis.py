"""Canary analysis: does the canary revision behave as well as the stable one?

Pure: it compares two windows of per-revision measurements (from the gateway's own counters in
embedded mode, from Prometheus on a cluster) against the Model's ``rollout.analysis`` thresholds
and returns a verdict with each metric's value and threshold, so status and events can say
exactly which metric failed and by how much.

A model that generates text is judged on the time to its first token and per output token, each
absolutely and against the stable revision, not on the p99 of whole answers: a whole answer's
time grows with the length asked for, which says nothing about the revision.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from modelplane.api import Analysis, AnalysisResult, MetricVerdict
from modelplane.api.counters import RevisionCounts

# "Not worse than stable": absolute slack over the stable error rate, and a latency factor with a
# small absolute slack so sub-millisecond jitter does not fail a healthy canary.
ERROR_RATE_MARGIN = 0.01
LATENCY_FACTOR = 2.0
LATENCY_SLACK_MS = 10.0


@dataclass(frozen=True)
class Window:
    """What one revision did over an analysis window."""

    requests: int = 0
    errors: int = 0
    p99_ms: float | None = None
    compared: int = 0  # shadow comparisons with the stable revision
    disagreement: float = 0.0  # mean disagreement over those comparisons (0 agree .. 1 differ)
    first_token_p99_ms: float | None = None  # generated text: streamed answers
    per_token_p99_ms: float | None = None
    measures: frozenset[str] = frozenset()  # how the comparisons were made

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0


@dataclass(frozen=True)
class Verdict:
    """``passed`` is None while there is too little traffic to judge."""

    passed: bool | None
    result: AnalysisResult


def analyse(
    analysis: Analysis, canary: Window, stable: Window, generative: bool = False
) -> Verdict:
    if canary.requests < analysis.min_requests:
        message = f"waiting for traffic: {canary.requests}/{analysis.min_requests} canary requests"
        return Verdict(None, AnalysisResult(passed=False, message=message))
    timing = (
        [
            *_against_stable("timeToFirstTokenP99Ms", canary.first_token_p99_ms,
                             stable.first_token_p99_ms, analysis.max_time_to_first_token_p99_ms),
            *_against_stable("timePerOutputTokenP99Ms", canary.per_token_p99_ms,
                             stable.per_token_p99_ms, analysis.max_time_per_output_token_p99_ms),
        ]
        if generative
        else _against_stable("latencyP99Ms", canary.p99_ms, stable.p99_ms,
                             analysis.max_latency_p99_ms)
    )  # fmt: skip
    metrics = [
        *_error_rate(analysis, canary, stable),
        *timing,
        *_disagreement(analysis, canary),
    ]
    failed = [m for m in metrics if not m.passed]
    if failed:
        message = "; ".join(_describe(m) for m in failed)
        return Verdict(False, AnalysisResult(passed=False, message=message, metrics=metrics))
    return Verdict(
        True, AnalysisResult(passed=True, message="all metrics within thresholds", metrics=metrics)
    )


def _error_rate(analysis: Analysis, canary: Window, stable: Window) -> list[MetricVerdict]:
    rate = canary.error_rate
    relative = stable.error_rate + ERROR_RATE_MARGIN
    return [
        MetricVerdict(
            name="errorRate",
            value=rate,
            threshold=analysis.max_error_rate,
            passed=rate <= analysis.max_error_rate,
        ),
        MetricVerdict(
            name="errorRateVsStable", value=rate, threshold=relative, passed=rate <= relative
        ),
    ]


def _against_stable(
    name: str, canary: float | None, stable: float | None, limit: float
) -> list[MetricVerdict]:
    """A p99 in milliseconds against its threshold and, where the stable revision has one,
    against twice the stable's plus a small slack (sub-millisecond jitter fails nobody)."""
    if canary is None:
        return []
    verdicts = [MetricVerdict(name=name, value=canary, threshold=limit, passed=canary <= limit)]
    if stable is not None:
        relative = stable * LATENCY_FACTOR + LATENCY_SLACK_MS
        verdicts.append(
            MetricVerdict(
                name=f"{name}VsStable", value=canary, threshold=relative, passed=canary <= relative
            )
        )
    return verdicts


def _disagreement(analysis: Analysis, canary: Window) -> list[MetricVerdict]:
    if canary.compared == 0:
        return []
    limit = analysis.max_disagreement
    return [
        MetricVerdict(
            name="disagreement",
            value=canary.disagreement,
            threshold=limit,
            passed=canary.disagreement <= limit,
            measure=", ".join(sorted(canary.measures)) or None,
        )
    ]


def _describe(metric: MetricVerdict) -> str:
    value = metric.value if metric.value is not None else float("nan")
    return f"{metric.name} {value:.4g} exceeds {metric.threshold:.4g}"


def window(before: RevisionCounts | None, after: RevisionCounts) -> Window:
    """What happened between two readings of the same counters (``None``: since zero)."""
    base = before.buckets if before else (0,) * len(after.buckets)
    deltas = [b - a for a, b in zip(base, after.buckets, strict=True)]
    compared = after.compared - (before.compared if before else 0)
    disagreement = after.disagreement - (before.disagreement if before else 0.0)
    return Window(
        requests=after.requests - (before.requests if before else 0),
        errors=after.errors - (before.errors if before else 0),
        p99_ms=quantile_ms(after.bounds_ms, deltas, 0.99),
        compared=compared,
        disagreement=disagreement / compared if compared else 0.0,
        first_token_p99_ms=_p99_between(
            after.bounds_ms,
            before.first_token_buckets if before else (),
            after.first_token_buckets,
        ),
        per_token_p99_ms=_p99_between(
            after.bounds_ms, before.per_token_buckets if before else (), after.per_token_buckets
        ),
        measures=after.measures,
    )


def _p99_between(
    bounds: tuple[float, ...], before: tuple[int, ...], after: tuple[int, ...]
) -> float | None:
    if not after:
        return None
    base = before or (0,) * len(after)
    return quantile_ms(bounds, [b - a for a, b in zip(base, after, strict=True)], 0.99)


def quantile_ms(bounds: tuple[float, ...], counts: list[int], q: float) -> float | None:
    """The q-quantile from per-bucket counts, interpolated linearly inside its bucket."""
    total = sum(counts)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for index, count in enumerate(counts):
        if count and seen + count >= rank:
            low = bounds[index - 1] if index > 0 else 0.0
            high = bounds[index] if index < len(bounds) else low * 2
            return low + (high - low) * (rank - seen) / count
        seen += count
    return float(bounds[-1])


class MetricSource(Protocol):
    """Where analysis windows come from: the gateway's own counters in embedded mode, Prometheus
    on a cluster. The controller asks on every pass while a rollout is on."""

    async def windows(
        self, model: str, revisions: Sequence[str], since: datetime, now: datetime
    ) -> dict[str, Window]:
        """What each revision of ``model`` (``namespace/name``) did between ``since`` and
        ``now``; a revision with no data gets an empty window."""
        ...

    def forget(self, model: str) -> None:
        """The model is gone: drop whatever is kept for it."""
        ...


class History:
    """Readings of one revision's cumulative counters, enough to answer "since when".

    A step begins at the time of a controller pass that took a reading, so two readings
    suffice: the base (the last one at or before the step's start) and the latest.
    """

    def __init__(self) -> None:
        self._base: tuple[datetime, RevisionCounts] | None = None
        self._last: tuple[datetime, RevisionCounts] | None = None

    def window(self, since: datetime, now: datetime, current: RevisionCounts) -> Window:
        if self._last is not None and self._last[0] <= since:
            self._base = self._last
        if self._base is None:  # nothing read before: the first reading stands in for ``since``
            self._base = (now, current)
        self._last = (now, current)
        return window(self._base[1], current)
