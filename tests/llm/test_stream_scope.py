"""The data plane's stream holds its request's scope until the stream ends, however it ends: a
client that leaves mid-stream leaves nothing in flight, and its request is counted once, a
success (its answer had begun).

The runtime's own ASGI app runs in process over the tiny chat model; the client is played by hand,
because httpx's in-process transport reads a whole response before it returns one.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import httpx
import orjson
import pytest
from asgi_lifespan import LifespanManager
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message

from modelplane.api import load_model_file
from modelplane.runtime.server import Runtime, RuntimeOptions
from modelplane.telemetry import names

STORY = {"model": "tiny-chat", "prompt": "Tell me a story", "max_tokens": 1024, "seed": 3}


def sample(runtime: Runtime, name: str, **labels: str) -> float:
    value = runtime.metrics.registry.get_sample_value(
        name, {names.LABEL_MODEL: "tiny-chat", **labels}
    )
    return value or 0.0


async def leave_after_first_event(app: ASGIApp, spec_version: str) -> list[Message]:
    """POST a streamed completion, and leave once its first event arrived: the client says so
    (ASGI 2.3, uvicorn's: a disconnect message) or the next send fails (2.4)."""
    body = orjson.dumps({**STORY, "stream": True})
    left = asyncio.Event()
    sent: list[Message] = []
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> Message:
        if messages:
            return messages.pop()
        await left.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        if left.is_set() and spec_version == "2.4":
            raise OSError("the client left")
        sent.append(message)
        if message["type"] == "http.response.body" and message.get("body"):
            left.set()

    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": spec_version},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/completions",
        "raw_path": b"/v1/completions",
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("runtime", 80),
    }
    with contextlib.suppress(ClientDisconnect):  # 2.4: the app learns it from the failed send
        await app(scope, receive, send)
    return sent


@pytest.mark.parametrize("spec_version", ["2.3", "2.4"])
def test_a_stream_its_client_leaves_is_counted_once_and_leaves_nothing_in_flight(
    llm_dir: Path, tmp_path: Path, spec_version: str
) -> None:
    (model,) = load_model_file(llm_dir / "chat.yaml")
    runtime = Runtime(model, RuntimeOptions(cache_dir=tmp_path))
    in_flight, requests = names.RUNTIME_IN_FLIGHT, names.RUNTIME_REQUESTS + "_total"

    async def exercise() -> None:
        ready = asyncio.Event()
        runtime.on_ready.append(ready.set)
        async with LifespanManager(runtime.app()) as manager:
            await asyncio.wait_for(ready.wait(), timeout=60)
            sent = await leave_after_first_event(manager.app, spec_version)
            assert sent[0]["status"] == 200
            assert sent[1]["body"].startswith(b"data: ")
            assert sample(runtime, in_flight) == 0
            assert sample(runtime, requests, outcome="success") == 1
            # The model is free again: the next request is served (after the left one stopped).
            transport = httpx.ASGITransport(app=manager.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://runtime") as client:
                short = {**STORY, "max_tokens": 3}
                answer = await client.post("/v1/completions", json=short, timeout=60)
            assert answer.status_code == 200
            assert sample(runtime, in_flight) == 0
            assert sample(runtime, requests, outcome="success") == 2

    asyncio.run(exercise())
    duration = names.RUNTIME_REQUEST_DURATION + "_count"
    assert sample(runtime, duration) == 2  # each request left the flight once
    assert sample(runtime, requests, outcome="error") == 0
