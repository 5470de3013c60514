"""Reading the replicas' own metrics for autoscaling: a runtime's real exposition (its gauges
and their vLLM twins), a rate from the tokens counter, sums over replicas, and why a reading is
missing when reports are absent or stale."""

from __future__ import annotations

import asyncio

import httpx
from prometheus_client import CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from modelplane.api import ScalingMetric
from modelplane.backends.replica_reports import ReplicaReports, parse_report
from modelplane.telemetry.metrics import GenerationMetrics


class Replica:
    """A replica's metrics as its runtime keeps them, served at ``/metrics``."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.metrics = GenerationMetrics("tiny-chat", self.registry)
        self.up = True

    async def serve(self, request: Request) -> Response:
        if not self.up:
            return Response("stopping", status_code=503)
        return Response(generate_latest(self.registry), media_type="text/plain")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def read_once(reports: ReplicaReports, replicas: dict[str, Replica]) -> None:
    """One round of ``run``: every named replica read, over in-process transports."""

    async def go() -> None:
        for url, replica in replicas.items():
            app = Starlette(routes=[Route("/metrics", replica.serve)])
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app)) as client:
                await reports._read(client, url)

    asyncio.run(go())


def test_a_runtimes_exposition_reads_as_its_gauges_and_a_token_rate() -> None:
    replica = Replica()
    replica.metrics.waiting.set(3)
    replica.metrics.kv_cache_usage.set(0.25)
    replica.metrics.generation_tokens.inc(100)
    first = parse_report(generate_latest(replica.registry).decode(), 10.0, None)
    assert first.value(ScalingMetric.WAITING) == 3
    assert first.value(ScalingMetric.KV_CACHE) == 0.25
    assert first.value(ScalingMetric.TOKENS_PER_SECOND) is None  # no earlier count to rate
    replica.metrics.generation_tokens.inc(300)
    second = parse_report(generate_latest(replica.registry).decode(), 12.0, first)
    assert second.value(ScalingMetric.TOKENS_PER_SECOND) == 150
    restarted = parse_report(generate_latest(CollectorRegistry()).decode(), 13.0, second)
    assert restarted.value(ScalingMetric.TOKENS_PER_SECOND) is None
    assert restarted.value(ScalingMetric.WAITING) is None  # an engine without the gauge


def test_an_external_vllm_engines_series_count_beside_the_runtimes_idle_ones() -> None:
    text = (
        'modelplane_runtime_generation_requests_waiting{model="m"} 0\n'
        'vllm:num_requests_waiting{model_name="m"} 7\n'
        'vllm:kv_cache_usage_perc{model_name="m"} 0.5\n'
    )
    report = parse_report(text, 1.0, None)
    assert (report.value(ScalingMetric.WAITING), report.value(ScalingMetric.KV_CACHE)) == (7, 0.5)


def test_readings_sum_over_replicas_and_say_why_when_missing() -> None:
    clock = Clock()
    reports = ReplicaReports(clock)
    a, b = Replica(), Replica()
    a.metrics.waiting.set(4)
    b.metrics.waiting.set(2)
    assert reports.reading("default/chat", ScalingMetric.WAITING).missing == (
        "no ready replica to report waiting"
    )
    reports.track("default/chat", ["http://a", "http://b", "http://c"])
    missing = reports.reading("default/chat", ScalingMetric.WAITING)
    assert (missing.value, missing.replicas) == (None, 3)
    assert missing.missing == "none of the 3 ready replicas has reported its metrics yet"
    read_once(reports, {"http://a": a, "http://b": b})
    # c, just ready, has not reported: it counts at the others' average, 3.
    assert reports.reading("default/chat", ScalingMetric.WAITING).value == 9
    clock.now += 6
    a.up = False  # a replica that stops answering keeps its last report until it is stale
    read_once(reports, {"http://a": a})
    stale = reports.reading("default/chat", ScalingMetric.WAITING)
    assert stale.value is None
    assert stale.missing == "the replicas' latest report is 6s old (stale after 5s)"
    reports.track("default/chat", ["http://b"])
    read_once(reports, {"http://b": b})
    assert reports.reading("default/chat", ScalingMetric.WAITING).value == 2
    # b read twice, 6 s apart, with nothing generated between: a rate of 0 tokens/s.
    assert reports.reading("default/chat", ScalingMetric.TOKENS_PER_SECOND).value == 0
    reports.forget("default/chat")
    assert reports.reading("default/chat", ScalingMetric.WAITING).value is None
