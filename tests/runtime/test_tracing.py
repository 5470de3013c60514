"""Spans are recorded when a tracer provider is configured, and not at all otherwise."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from modelplane.api import load_model_file
from modelplane.runtime.server import Runtime, RuntimeOptions
from modelplane.telemetry import logs
from modelplane.telemetry.tracing import tracer, v2_route

TRACE_ID = 0x4BF92F3577B34DA6A3CE929D0E0E4736
PARENT_ID = 0x00F067AA0BA902B7
BODY = {
    "inputs": [{"name": "X", "datatype": "FP32", "shape": [1, 4], "data": [5.1, 3.5, 1.4, 0.2]}]
}


def traced_runtime(iris_dir: Path, tmp_path: Path) -> tuple[Runtime, InMemorySpanExporter]:
    """The iris runtime at model version 7, its spans kept in memory."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    (model,) = load_model_file(iris_dir / "iris.yaml")
    options = RuntimeOptions(tracer_provider=provider, model_version="7", cache_dir=tmp_path)
    return Runtime(model, options), exporter


def test_infer_spans_carry_model_and_version(iris_dir: Path, tmp_path: Path) -> None:
    runtime, exporter = traced_runtime(iris_dir, tmp_path)

    async def exercise() -> None:
        async with LifespanManager(runtime.app()) as manager:
            transport = httpx.ASGITransport(app=manager.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://runtime") as client:
                for _ in range(500):
                    if runtime.dataplane.ready:
                        break
                    await asyncio.sleep(0.01)
                headers = {"traceparent": f"00-{TRACE_ID:032x}-{PARENT_ID:016x}-01"}
                ok = await client.post("/v2/models/iris/infer", json=BODY, headers=headers)
                assert ok.status_code == 200
                missing = await client.post("/v2/models/nope/infer", json=BODY)
                assert missing.status_code == 404

    asyncio.run(exercise())
    finished = exporter.get_finished_spans()
    spans = {s.name: s for s in finished if s.context.trace_id == TRACE_ID}
    server = spans["POST /v2/models/{model}/infer"]
    # The caller's trace goes on: same trace id, the caller's span as parent.
    assert server.context.trace_id == TRACE_ID
    assert server.parent is not None
    assert server.parent.span_id == PARENT_ID
    assert server.kind is SpanKind.SERVER
    assert server.attributes == {
        "http.request.method": "POST",
        "http.route": "/v2/models/{model}/infer",
        "url.path": "/v2/models/iris/infer",
        "http.response.status_code": 200,
        "modelplane.model.name": "iris",
        "modelplane.model.version": "7",
    }
    queue, inference = spans["queue"], spans["inference"]
    for child in (queue, inference):
        assert child.parent is not None
        assert child.parent.span_id == server.context.span_id
    assert queue.end_time <= inference.start_time  # type: ignore[operator]
    assert inference.attributes == {"modelplane.batch.size": 1}
    (refused,) = [s for s in finished if s.context.trace_id != TRACE_ID]
    assert refused.attributes is not None
    assert refused.attributes["modelplane.outcome"] == "ModelNotFoundError"
    assert refused.attributes["http.response.status_code"] == 404


def test_no_tracer_without_a_configured_provider() -> None:
    assert tracer() is None


def test_routes_are_templates_of_low_cardinality() -> None:
    assert v2_route("/v2/models/iris/infer") == "/v2/models/{model}/infer"
    assert v2_route("/v2/models/team-a/iris/infer") == "/v2/models/{model}/infer"
    assert v2_route("/v2/models/iris/versions/iris-r2/infer") == (
        "/v2/models/{model}/versions/{version}/infer"
    )
    assert v2_route("/v2/models/team-a/iris/ready") == "/v2/models/{model}/ready"
    assert v2_route("/v2/models/iris") == "/v2/models/{model}"
    assert v2_route("/v2/health/ready") == "/v2/health/ready"
    assert v2_route("/openapi.json") == "/openapi.json"
    assert v2_route("/no/such/path/12345") == "other"


def test_json_log_lines_carry_the_current_trace(capsys: pytest.CaptureFixture[str]) -> None:
    provider = TracerProvider()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    logs.configure("info", "json")
    try:
        with provider.get_tracer("test").start_as_current_span("request") as span:
            logging.getLogger("modelplane.test").warning("replica %s failed", "r-1")
        logging.getLogger("modelplane.test").warning("outside any request")
    finally:
        root.handlers[:], root.level = handlers, level
    inside, outside = (json.loads(line) for line in capsys.readouterr().err.splitlines())
    context = span.get_span_context()
    assert inside["message"] == "replica r-1 failed"
    assert inside["level"] == "warning"
    assert inside["trace_id"] == f"{context.trace_id:032x}"
    assert inside["span_id"] == f"{context.span_id:016x}"
    assert "trace_id" not in outside
    assert logs.message_of(json.dumps(inside)) == "replica r-1 failed"
    assert logs.message_of("2026-01-01 ERROR x: plain text") == "2026-01-01 ERROR x: plain text"
