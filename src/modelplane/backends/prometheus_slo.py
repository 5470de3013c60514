"""An SLO's counts from Prometheus, which scrapes every gateway: what clients saw, per Model, over
each window, from ``modelplane_gateway_requests_total`` (and the request duration histogram for
a latency objective). Used by the operator with ``--prometheus`` and by ``modelplane up`` with
``--with-prometheus`` or ``--prometheus``.

All windows come in one query (each ``increase()`` labelled with its window), so they are read
from the same scrapes; ``increase()`` extrapolates to the window's ends, so counts may be
fractional, and Prometheus handles counter resets (a gateway restarting).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import httpx

from modelplane.backends.prometheus import escape, instant
from modelplane.control.slo import Counts, SLOReading, period, slower_than
from modelplane.telemetry import names

SOURCE = "prometheus"
WINDOW_LABEL = "slo_window"


class PrometheusSLOSource:
    def __init__(self, url: str, client: httpx.AsyncClient | None = None) -> None:
        self.url = url.rstrip("/")
        self._client = client or httpx.AsyncClient(timeout=5.0)

    async def counts(
        self, model: str, windows: Sequence[timedelta], latency_ms: float | None, now: datetime
    ) -> SLOReading:
        selector = f'{names.LABEL_MODEL}="{escape(model)}"'
        requests = f"{names.GATEWAY_REQUESTS}_total{{{selector}}}"
        by_outcome = await self._each_window(requests, names.LABEL_OUTCOME, windows, now)
        buckets: dict[tuple[str, ...], float] = {}
        if latency_ms is not None:
            histogram = f"{names.GATEWAY_REQUEST_DURATION}_bucket{{{selector}}}"
            buckets = await self._each_window(histogram, "le", windows, now)
        counts = {}
        for span in windows:
            label = period(span)
            outcomes = {k[1]: v for k, v in by_outcome.items() if k[0] == label}
            total = sum(outcomes.values())
            slow = None
            if latency_ms is not None:
                cumulative = {k[1]: v for k, v in buckets.items() if k[0] == label}
                slow = _slow_share(cumulative, latency_ms) * total
            counts[span] = Counts(total, outcomes.get("error", 0.0), slow)
        return SLOReading(counts, SOURCE)

    async def _each_window(
        self, series: str, by: str, windows: Sequence[timedelta], now: datetime
    ) -> dict[tuple[str, ...], float]:
        """``sum by (by) (increase(series[window]))`` for every window, keyed (window, by)."""
        query = " or ".join(
            f"label_replace(sum by ({by}) (increase({series}[{period(span)}])), "
            f'"{WINDOW_LABEL}", "{period(span)}", "", "")'
            for span in windows
        )
        return await instant(self._client, self.url, query, now, (WINDOW_LABEL, by))

    def forget(self, model: str) -> None:
        """Nothing is kept per Model: Prometheus keeps the series."""

    async def close(self) -> None:
        await self._client.aclose()


def _slow_share(cumulative: dict[str, float], latency_ms: float) -> float:
    """The share of a histogram's observations slower than ``latency_ms``, from its cumulative
    bucket counts by ``le`` (seconds)."""
    ordered = sorted((float(le), count) for le, count in cumulative.items())
    if not ordered or ordered[-1][1] <= 0:
        return 0.0
    bounds = [le * 1000 for le, _ in ordered if le != float("inf")]
    cumulative_counts = [count for _, count in ordered]
    per_bucket = [
        max(0.0, b - a)
        for a, b in zip([0.0, *cumulative_counts[:-1]], cumulative_counts, strict=True)
    ]
    return slower_than(bounds, per_bucket, latency_ms) / ordered[-1][1]
