"""What the replicas report of their saturation, for a Model autoscaled on a reported metric
(``spec.scaling.metric``: waiting, kvCache, tokensPerSecond).

Both backends use it the same way: each pass names the ready replicas of a Model's serving
revision (embedded: the supervisor's endpoints; on a cluster: its pods by IP, as the evaluation
gate reaches them), ``run`` reads every named replica's ``/metrics`` once a second, and
``reading`` sums the metric over the replicas with a report under ``STALE_SECONDS`` old. The
gauges read are the runtime's own and their ``vllm:`` twins (which an external vLLM engine's
metrics, passed through by the runtime, also carry).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import httpx
from prometheus_client.parser import text_string_to_metric_families

from modelplane.api import ScalingMetric
from modelplane.control.autoscaling import Reading
from modelplane.telemetry import names

log = logging.getLogger(__name__)

READ_EVERY = 1.0
STALE_SECONDS = 5.0
READ_TIMEOUT = 1.0
# Each metric's series, the runtime's name first; several present: the largest counts (an
# external engine's own series beside the runtime's idle ones).
SERIES = {
    ScalingMetric.WAITING: (names.RUNTIME_REQUESTS_WAITING, names.VLLM_REQUESTS_WAITING),
    ScalingMetric.KV_CACHE: (names.RUNTIME_KV_CACHE_USAGE, names.VLLM_KV_CACHE_USAGE),
}
GENERATED = (f"{names.RUNTIME_GENERATION_TOKENS}_total", "vllm:generation_tokens_total")


@dataclass(frozen=True)
class ReplicaReport:
    """One replica's metrics at one read; ``tokens_per_second`` since the read before."""

    at: float  # time.monotonic()
    values: dict[ScalingMetric, float]
    generated: float | None  # tokens generated since the replica started
    tokens_per_second: float | None = None

    def value(self, metric: ScalingMetric) -> float | None:
        if metric is ScalingMetric.TOKENS_PER_SECOND:
            return self.tokens_per_second
        return self.values.get(metric)


def parse_report(text: str, at: float, before: ReplicaReport | None) -> ReplicaReport:
    """A replica's ``/metrics`` text as a report; ``before``: its previous one, for the rate."""
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            totals[sample.name] = totals.get(sample.name, 0.0) + sample.value
    values = {
        metric: max(totals[n] for n in series if n in totals)
        for metric, series in SERIES.items()
        if any(n in totals for n in series)
    }
    generated = max((totals[n] for n in GENERATED if n in totals), default=None)
    rate = None
    earlier = before.generated if before is not None else None
    # A counter that went back belongs to a restarted replica: this read starts afresh.
    if generated is not None and earlier is not None and generated >= earlier and before:
        rate = (generated - earlier) / max(at - before.at, 1e-3)
    return ReplicaReport(at, values, generated, rate)


@dataclass
class ReplicaReports:
    """The latest report of every replica named by a pass; time is ``clock``'s."""

    clock: Callable[[], float] = time.monotonic
    _named: dict[str, tuple[str, ...]] = field(default_factory=dict)  # Model key -> URLs
    _reports: dict[str, ReplicaReport] = field(default_factory=dict)  # by URL
    _failing: set[str] = field(default_factory=set)

    def track(self, key: str, urls: Iterable[str]) -> None:
        """Read ``urls`` (the ready replicas of ``key``'s serving revision) from now on."""
        self._named[key] = tuple(sorted(urls))
        self._keep_named()

    def forget(self, key: str) -> None:
        self._named.pop(key, None)
        self._keep_named()

    def _keep_named(self) -> None:
        """Drop the reports of replicas no pass names any more (stopped, or another Model's)."""
        kept = {u for urls in self._named.values() for u in urls}
        self._reports = {u: r for u, r in self._reports.items() if u in kept}

    def reading(self, key: str, metric: ScalingMetric, held: int = 0) -> Reading:
        """``metric`` summed over ``key``'s named replicas; with no fresh report, why not.
        ``held``: requests the gateways hold for the model (waiting while it is saturated, or
        for a cold start), which wait as much as those in the replicas' waiting lists."""
        urls = self._named.get(key, ())
        if not urls:
            return Reading(missing=f"no ready replica to report {metric.value}")
        now = self.clock()
        heard = [r for u in urls if (r := self._reports.get(u)) is not None]
        fresh = [
            v for r in heard if now - r.at <= STALE_SECONDS and (v := r.value(metric)) is not None
        ]
        if fresh:
            waiting = held if metric is ScalingMetric.WAITING else 0
            return Reading(sum(fresh) / len(fresh) * len(urls) + waiting, "", len(urls))
        return Reading(missing=_why_missing(metric, heard, len(urls), now), replicas=len(urls))

    async def run(self) -> None:
        """Read every named replica once every ``READ_EVERY`` seconds."""
        async with httpx.AsyncClient(timeout=READ_TIMEOUT) as client:
            while True:
                urls = {u for named in self._named.values() for u in named}
                await asyncio.gather(*(self._read(client, u) for u in sorted(urls)))
                await asyncio.sleep(READ_EVERY)

    async def _read(self, client: httpx.AsyncClient, url: str) -> None:
        try:
            reply = await client.get(f"{url}/metrics")
            reply.raise_for_status()
            report = parse_report(reply.text, self.clock(), self._reports.get(url))
        except (httpx.HTTPError, ValueError) as exc:
            if url not in self._failing:  # once per outage, not once a second
                log.warning("reading the metrics of %s failed: %s", url, exc)
            self._failing.add(url)
            return
        self._failing.discard(url)
        self._reports[url] = report


def _why_missing(
    metric: ScalingMetric, heard: Sequence[ReplicaReport], replicas: int, now: float
) -> str:
    if not heard:
        return f"none of the {replicas} ready replicas has reported its metrics yet"
    newest = max(r.at for r in heard)
    if now - newest > STALE_SECONDS:
        age = now - newest
        return f"the replicas' latest report is {age:.0f}s old (stale after {STALE_SECONDS:g}s)"
    if metric is ScalingMetric.TOKENS_PER_SECOND:
        return "the replicas report no generated tokens counter to rate yet"
    return f"the replicas' engine reports no {metric.value} gauge"
