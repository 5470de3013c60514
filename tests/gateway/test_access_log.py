"""The gateway's access log, in-process in front of a real runtime: one line per request naming
the model and the revision it was routed to, and, with tracing on, the gateway's own span,
which has ended by the time the line is written."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from modelplane.gateway.proxy import Gateway
from modelplane.gateway.routing import RoutingTable
from modelplane.telemetry import access, logs
from modelplane.telemetry.access import AccessLogSettings, logged
from modelplane.telemetry.gateway_metrics import GatewayMetrics
from tests.processes import RuntimeProcess

TRACE_ID, PARENT_ID = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
IRIS = {
    "inputs": [{"name": "X", "datatype": "FP32", "shape": [1, 4], "data": [5.1, 3.5, 1.4, 0.2]}]
}


@pytest.mark.usefixtures("logging_restored")
def test_a_routed_request_is_one_line_naming_model_revision_and_span(
    capsys: pytest.CaptureFixture[str], iris_runtime: RuntimeProcess, iris_dir: Path
) -> None:
    logs.configure("warning", "json")
    access.enable()
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    table = RoutingTable()
    table.publish("team-a/iris", "iris", {"iris-r2": (100, [("iris-r2-1", iris_runtime.url)])})
    gateway = Gateway(table, GatewayMetrics(), tracer=provider.get_tracer("test"))

    async def exercise() -> list[int]:
        async with LifespanManager(logged(gateway, AccessLogSettings())) as manager:
            transport = httpx.ASGITransport(app=manager.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
                headers = {"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"}
                served = await client.post(
                    "/v2/models/team-a/iris/infer", json=IRIS, headers=headers
                )
                missing = await client.post("/v2/models/team-a/nope/infer", json=IRIS)
                probe = await client.get("/v2/health/ready")
                return [served.status_code, missing.status_code, probe.status_code]

    assert asyncio.run(exercise()) == [200, 404, 200]
    lines = [json.loads(ln) for ln in capsys.readouterr().err.splitlines()]
    assert [line["logger"] for line in lines] == [access.LOGGER] * 2  # none for the probe
    served, missing = lines
    spans = [s for s in exporter.get_finished_spans() if s.kind is SpanKind.SERVER]
    (span,) = [s for s in spans if f"{s.context.trace_id:032x}" == TRACE_ID]
    assert served["route"] == "/v2/models/{model}/infer"
    assert (served["status"], served["model"], served["revision"]) == (
        200,
        "team-a/iris",
        "iris-r2",
    )
    assert (served["trace_id"], served["span_id"]) == (TRACE_ID, f"{span.context.span_id:016x}")
    assert (missing["status"], missing["model"]) == (404, "team-a/nope")
    assert missing["trace_id"] != TRACE_ID  # a trace of its own, begun at the gateway
    assert "revision" not in missing
