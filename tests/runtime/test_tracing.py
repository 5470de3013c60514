"""Spans are recorded when a tracer provider is configured, and not at all otherwise."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from asgi_lifespan import LifespanManager
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from modelplane.api import load_model_file
from modelplane.runtime.server import Runtime, RuntimeOptions
from modelplane.telemetry.tracing import tracer

BODY = {
    "inputs": [{"name": "X", "datatype": "FP32", "shape": [1, 4], "data": [5.1, 3.5, 1.4, 0.2]}]
}


def test_infer_spans_carry_model_and_version(iris_dir: Path, tmp_path: Path) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    (model,) = load_model_file(iris_dir / "iris.yaml")
    options = RuntimeOptions(tracer_provider=provider, model_version="7", cache_dir=tmp_path)
    runtime = Runtime(model, options)

    async def exercise() -> None:
        async with LifespanManager(runtime.app()) as manager:
            transport = httpx.ASGITransport(app=manager.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://runtime") as client:
                for _ in range(500):
                    if runtime.dataplane.ready:
                        break
                    await asyncio.sleep(0.01)
                ok = await client.post("/v2/models/iris/infer", json=BODY)
                assert ok.status_code == 200
                missing = await client.post("/v2/models/nope/infer", json=BODY)
                assert missing.status_code == 404

    asyncio.run(exercise())
    spans = exporter.get_finished_spans()
    assert [s.name for s in spans] == ["infer iris", "infer nope"]
    assert spans[0].attributes == {
        "modelplane.model.name": "iris",
        "modelplane.model.version": "7",
    }
    assert spans[1].attributes["modelplane.outcome"] == "ModelNotFoundError"  # type: ignore[index]


def test_no_tracer_without_a_configured_provider() -> None:
    assert tracer() is None
