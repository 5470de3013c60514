"""The runtime's access log: a line per request in its process log, with the route template,
status, model, revision and the request's trace; probes get none, and it can be sampled or off."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager

from modelplane.telemetry import access, logs
from tests.conftest import MODELS, StartRuntime, write_manifest
from tests.processes import access_lines
from tests.runtime.test_tracing import traced_runtime

TRACE_ID, PARENT_ID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
TRACEPARENT = {"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"}
IRIS = {
    "inputs": [{"name": "X", "datatype": "FP32", "shape": [1, 4], "data": [5.1, 3.5, 1.4, 0.2]}]
}
INFER = "/v2/models/{model}/infer"


def test_a_request_is_one_line_with_its_route_status_model_and_trace(
    start_runtime: StartRuntime, iris_dir: Path
) -> None:
    runtime = start_runtime("-f", str(iris_dir / "iris.yaml"), "--model-version", "iris-r1")
    runtime.wait_ready()  # probes, which get no line
    reply = httpx.post(f"{runtime.url}/v2/models/iris/infer", json=IRIS, headers=TRACEPARENT)
    assert reply.status_code == 200
    assert runtime.terminate() == 0  # its log is complete once it has exited
    (line,) = access_lines(runtime.output())
    assert line["level"] == "info"
    assert line["message"] == f"POST {INFER} 200"
    assert {k: line[k] for k in ("method", "route", "status", "model", "revision")} == {
        "method": "POST",
        "route": INFER,
        "status": 200,
        "model": "default/iris",
        "revision": "iris-r1",
    }
    assert line["bytes"] == len(reply.content)
    assert line["duration_ms"] > 0
    # No span of its own (tracing is off): the caller's trace and span.
    assert (line["trace_id"], line["span_id"]) == (TRACE_ID, PARENT_ID)


def test_sampled_out_answers_get_no_line_and_errors_always_do(
    start_runtime: StartRuntime, tmp_path: Path
) -> None:
    manifest = write_manifest(
        tmp_path / "broken.yaml", "broken", (MODELS / "flaky.py").as_uri(), "python",
        extra="  runtime:\n    parameters: {fail: 'true'}\n",
    )  # fmt: skip
    runtime = start_runtime("-f", str(manifest), "--access-log-sample", "0", "--log-format", "text")
    runtime.wait_ready()
    assert httpx.post(f"{runtime.url}/v2/models/other/infer", json=IRIS).status_code == 404
    assert httpx.post(f"{runtime.url}/v2/models/broken/infer", json=IRIS).status_code == 500
    runtime.terminate()
    lines = [ln for ln in runtime.output().splitlines() if " modelplane.access: " in ln]
    assert len(lines) == 1, lines
    assert f"modelplane.access: POST {INFER} 500 method=POST route={INFER} status=500" in lines[0]
    assert " model=default/broken " in lines[0]


def test_no_access_log_writes_none(start_runtime: StartRuntime, iris_dir: Path) -> None:
    runtime = start_runtime("-f", str(iris_dir / "iris.yaml"), "--no-access-log")
    runtime.wait_ready()
    reply = httpx.post(f"{runtime.url}/v2/models/iris/infer", json=IRIS, headers=TRACEPARENT)
    assert reply.status_code == 200
    runtime.terminate()
    assert access_lines(runtime.output()) == []
    assert "modelplane.access" not in runtime.output()


@pytest.mark.usefixtures("logging_restored")
def test_with_tracing_the_line_names_the_server_span_which_has_ended(
    capsys: pytest.CaptureFixture[str], iris_dir: Path, tmp_path: Path
) -> None:
    logs.configure("warning", "json")  # here, not in a fixture: capsys swaps stderr per phase
    access.enable()
    runtime, exporter = traced_runtime(iris_dir, tmp_path)

    async def exercise() -> None:
        loaded = asyncio.Event()
        runtime.on_ready.append(loaded.set)
        async with LifespanManager(runtime.app()) as manager:
            transport = httpx.ASGITransport(app=manager.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://runtime") as client:
                await asyncio.wait_for(loaded.wait(), 30)
                reply = await client.post("/v2/models/iris/infer", json=IRIS, headers=TRACEPARENT)
                assert reply.status_code == 200

    asyncio.run(exercise())
    (server,) = [s for s in exporter.get_finished_spans() if s.name == f"POST {INFER}"]
    (line,) = [json.loads(ln) for ln in capsys.readouterr().err.splitlines()]
    assert line["logger"] == access.LOGGER
    assert (line["route"], line["status"], line["revision"]) == (INFER, 200, "7")
    assert line["trace_id"] == TRACE_ID
    assert line["span_id"] == f"{server.context.span_id:016x}"  # not the caller's
