"""One trace across the gateway and the runtime, received by a real OpenTelemetry Collector:
the client's trace context continues through `modelplane up`'s gateway into the replica, and
every span carries the semantic conventions' HTTP attributes and modelplane's routing ones."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from modelplane.telemetry import names
from tests.llm.conftest import written_by
from tests.observability.collector import Collector, Span
from tests.platform.conftest import Platform, manifest, running_in, wait_for
from tests.processes import RuntimeProcess

SERVER, CLIENT = 2, 3  # OTLP span kinds
ROW = [[5.1, 3.5, 1.4, 0.2]]
BODY = {"inputs": [{"name": "X", "datatype": "FP32", "shape": [1, 4], "data": ROW[0]}]}


def _traced_env(collector: Collector, protocol: str = "http/protobuf") -> dict[str, str]:
    endpoint = collector.http_endpoint if protocol == "http/protobuf" else collector.grpc_endpoint
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
        "OTEL_BSP_SCHEDULE_DELAY": "100",  # export within a tenth of a second
        "OTEL_METRIC_EXPORT_INTERVAL": "500",
        "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment.name=test",
    }


@pytest.fixture(scope="module")
def traced(collector: Collector, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    yield from running_in(tmp_path_factory, "traced", env=_traced_env(collector))


def _post(url: str, trace_id: str, parent: str) -> httpx.Response:
    """An inference request with a W3C trace context: the client's span is ``parent``."""
    headers = {"traceparent": f"00-{trace_id}-{parent}-01"}
    return httpx.post(url, json=BODY, headers=headers, timeout=30)


def _trace(collector: Collector, trace_id: str, count: int) -> list[Span]:
    found: list[Span] = []

    def arrived() -> bool:
        found[:] = [s for s in collector.spans() if s.trace_id == trace_id]
        return len(found) >= count

    wait_for(arrived, f"{count} spans of trace {trace_id} at the collector", 20)
    return found


def test_one_trace_connects_client_gateway_and_runtime(
    traced: Platform, collector: Collector, iris_dir: Path, tmp_path: Path
) -> None:
    path = manifest(tmp_path / "m.yaml", "traced", iris_dir / "model.onnx")
    assert traced.cli("apply", "-f", str(path)).returncode == 0
    traced.wait_condition("traced", "Ready", "True", "RevisionReady")
    trace_id, parent = secrets.token_hex(16), secrets.token_hex(8)
    reply = _post(f"{traced.gateway}/v2/models/traced/infer", trace_id, parent)
    assert reply.status_code == 200, reply.text

    spans = _trace(collector, trace_id, 5)
    by_name = {(s.service, s.name): s for s in spans}
    gateway = by_name["modelplane", "POST /v2/models/{model}/infer"]
    attempt = by_name["modelplane", "POST"]
    runtime = by_name["modelplane-runtime", "POST /v2/models/{model}/infer"]
    queue = by_name["modelplane-runtime", "queue"]
    inference = by_name["modelplane-runtime", "inference"]

    # client -> gateway server span -> gateway attempt (client span) -> runtime server span
    assert gateway.parent_id == parent
    assert gateway.kind == SERVER
    assert attempt.parent_id == gateway.span_id
    assert attempt.kind == CLIENT
    assert runtime.parent_id == attempt.span_id
    assert {queue.parent_id, inference.parent_id} == {runtime.span_id}

    revision = reply.headers["x-modelplane-revision"]
    assert gateway.attributes == {
        "http.request.method": "POST",
        "http.route": "/v2/models/{model}/infer",
        "url.path": "/v2/models/traced/infer",
        "http.response.status_code": 200,
        "modelplane.model.name": "default/traced",
        "modelplane.revision": revision,
    }
    assert attempt.attributes["modelplane.revision"] == revision
    assert attempt.attributes["modelplane.attempt"] == 1
    assert attempt.attributes["server.address"] == "127.0.0.1"
    assert attempt.attributes["http.response.status_code"] == 200
    assert runtime.attributes["http.route"] == "/v2/models/{model}/infer"
    assert runtime.attributes["modelplane.model.name"] == "traced"
    assert inference.attributes["modelplane.batch.size"] == 1
    # The supervisor's readiness probes of the replica made no spans: only requests do.
    assert not [s.name for s in collector.spans() if "/health" in s.name or "metrics" in s.name]


def test_a_models_telemetry_settings_reach_its_replicas(
    traced: Platform, collector: Collector, iris_dir: Path, tmp_path: Path
) -> None:
    """spec.telemetry.env goes over the platform's OTEL_* for that model's replicas only."""
    extra = "  telemetry:\n    env: {OTEL_SERVICE_NAME: team-a-iris}\n"
    path = manifest(tmp_path / "m.yaml", "team-a", iris_dir / "model.onnx", extra)
    assert traced.cli("apply", "-f", str(path)).returncode == 0
    traced.wait_condition("team-a", "Ready", "True", "RevisionReady")
    trace_id, parent = secrets.token_hex(16), secrets.token_hex(8)
    assert _post(f"{traced.gateway}/v2/models/team-a/infer", trace_id, parent).status_code == 200

    services = {(s.service, s.name) for s in _trace(collector, trace_id, 5)}
    assert ("team-a-iris", "POST /v2/models/{model}/infer") in services
    assert ("modelplane", "POST /v2/models/{model}/infer") in services  # the gateway's own
    assert not any(service == "modelplane-runtime" for service, _ in services)


def test_a_failed_request_is_an_error_span(traced: Platform, collector: Collector) -> None:
    trace_id, parent = secrets.token_hex(16), secrets.token_hex(8)
    reply = _post(f"{traced.gateway}/v2/models/absent/infer", trace_id, parent)
    assert reply.status_code == 404
    (span,) = _trace(collector, trace_id, 1)
    assert span.attributes["http.response.status_code"] == 404
    assert span.status.get("code") != 2  # a 4xx is the client's error, not the server's


def test_the_runtime_exports_over_grpc_too(
    collector: Collector, iris_dir: Path, tmp_path: Path
) -> None:
    path = manifest(tmp_path / "m.yaml", "grpc-traced", iris_dir / "model.onnx")
    env = {**_traced_env(collector, "grpc"), "OTEL_SERVICE_NAME": "iris-over-grpc"}
    runtime = RuntimeProcess(["-f", str(path)], tmp_path / "serve.log", env=env)
    try:
        runtime.wait_ready()
        trace_id = secrets.token_hex(16)
        url = f"{runtime.url}/v2/models/grpc-traced/infer"
        reply = _post(url, trace_id, secrets.token_hex(8))
        assert reply.status_code == 200, reply.text
        spans = _trace(collector, trace_id, 3)
        assert {s.service for s in spans} == {"iris-over-grpc"}
    finally:
        runtime.terminate()


def test_metrics_are_mirrored_over_otlp(traced: Platform, collector: Collector) -> None:
    """The test above sent traffic: the gateway's and the runtime's Prometheus series arrive
    as OTLP metrics, with the same names, labels and buckets."""
    wanted = {"model": "default/traced", "revision": "traced-r1", "outcome": "success"}

    def arrived() -> bool:
        found = collector.metrics()
        requests = [
            m for m in found
            if m.name == "modelplane_gateway_requests" and m.attributes == wanted
        ]  # fmt: skip
        durations = [
            m for m in found
            if m.name == "modelplane_runtime_request_duration_seconds"
            and m.service == "modelplane-runtime"
        ]  # fmt: skip
        return bool(requests) and bool(durations)

    wait_for(arrived, "the gateway's and the runtime's metrics at the collector", 20)
    found = collector.metrics()
    request = next(
        m for m in reversed(found)
        if m.name == "modelplane_gateway_requests" and m.attributes == wanted
    )  # fmt: skip
    assert request.service == "modelplane"
    assert request.kind == "sum"
    assert float(request.point["asDouble"]) >= 1
    duration = next(
        m for m in reversed(found) if m.name == "modelplane_runtime_request_duration_seconds"
    )
    assert duration.kind == "histogram"
    assert [float(b) for b in duration.point["explicitBounds"]] == list(names.LATENCY_BUCKETS)
    assert int(duration.point["count"]) >= 1
    assert sum(int(c) for c in duration.point["bucketCounts"]) == int(duration.point["count"])


def test_a_streamed_chat_is_one_trace_with_the_genai_attributes(
    traced: Platform, collector: Collector, tmp_path: Path
) -> None:
    out = tmp_path / "llm"
    written_by("make_models.py", out)
    assert traced.cli("apply", "-f", str(out / "chat.yaml")).returncode == 0
    traced.wait_condition("tiny-chat", "Ready", "True", "RevisionReady", timeout=90)
    trace_id, parent = secrets.token_hex(16), secrets.token_hex(8)
    body = {
        "model": "tiny-chat",
        "messages": [{"role": "user", "content": "Hello"}],
        "max_tokens": 7,
        "temperature": 0,
        "stream": True,
    }
    headers = {"traceparent": f"00-{trace_id}-{parent}-01"}
    url = f"{traced.gateway}/v1/chat/completions"
    with httpx.stream("POST", url, json=body, headers=headers, timeout=30) as reply:
        assert reply.status_code == 200
        events = [line for line in reply.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "data: [DONE]"

    spans = _trace(collector, trace_id, 2)
    by_name = {(s.service, s.name): s for s in spans}
    gateway = by_name["modelplane", "POST /v1/chat/completions"]
    runtime = by_name["modelplane-runtime", "POST /v1/chat/completions"]
    assert gateway.parent_id == parent
    assert runtime.trace_id == gateway.trace_id
    assert gateway.attributes[names.GEN_AI_REQUEST_MODEL] == "default/tiny-chat"
    assert runtime.attributes[names.GEN_AI_OPERATION_NAME] == "chat"
    assert runtime.attributes[names.GEN_AI_REQUEST_MODEL] == "tiny-chat"
    assert runtime.attributes[names.GEN_AI_REQUEST_MAX_TOKENS] == 7
    assert runtime.attributes[names.GEN_AI_USAGE_OUTPUT_TOKENS] == 7  # set as the stream ended
    assert runtime.attributes[names.GEN_AI_RESPONSE_FINISH_REASONS] == ["length"]
    assert runtime.attributes[names.GEN_AI_USAGE_INPUT_TOKENS] > 5
    assert runtime.attributes[names.HTTP_ROUTE] == "/v1/chat/completions"


def test_generation_metrics_arrive_under_the_genai_names(
    traced: Platform, collector: Collector
) -> None:
    """The chat above: its time to first token and request duration also arrive as the GenAI
    conventions' histograms, with their buckets and the model as gen_ai.request.model."""
    expected = {
        "gen_ai.server.time_to_first_token": names.TIME_TO_FIRST_TOKEN_BUCKETS,
        "gen_ai.server.request.duration": names.GENERATION_DURATION_BUCKETS,
        "gen_ai.server.time_per_output_token": names.TIME_PER_OUTPUT_TOKEN_BUCKETS,
    }

    def latest(name: str) -> Any:
        return next(
            (
                m for m in reversed(collector.metrics())
                if m.name == name and m.attributes.get(names.GEN_AI_REQUEST_MODEL) == "tiny-chat"
                and int(m.point.get("count", 0)) >= 1
            ),
            None,
        )  # fmt: skip

    wait_for(lambda: all(latest(n) for n in expected), "GenAI histograms at the collector", 20)
    for name, buckets in expected.items():
        found = latest(name)
        assert found.kind == "histogram"
        assert found.service == "modelplane-runtime"
        assert [float(b) for b in found.point["explicitBounds"]] == list(buckets)
