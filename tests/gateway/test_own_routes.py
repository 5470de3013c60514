"""What the gateway answers itself: its description, and 405 for a method a path does not take,
in-process over ASGI; the description lists exactly the methods the gateway takes."""

from __future__ import annotations

import asyncio
import re

import httpx
import pytest

from modelplane.gateway import openapi, paths
from modelplane.gateway.proxy import Gateway
from modelplane.gateway.routing import RoutingTable
from modelplane.telemetry.gateway_metrics import GatewayMetrics

SAMPLES = {"name": "iris", "namespace": "team-a", "version": "iris-r2", "model": "iris"}


def _ask(method: str, path: str, **sent: object) -> httpx.Response:
    async def ask() -> httpx.Response:
        transport = httpx.ASGITransport(app=Gateway(RoutingTable(), GatewayMetrics()))
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            return await client.request(method, path, **sent)  # type: ignore[arg-type]

    return asyncio.run(ask())


def test_the_description_lists_exactly_the_methods_each_path_takes() -> None:
    described = openapi.document(auth=True, max_request_bytes=1024)
    for template, operations in described["paths"].items():
        path = re.sub(r"\{(\w+)\}", lambda m: SAMPLES[m.group(1)], template)
        taken = {method.upper() for method in operations}
        taken |= {"HEAD"} if "GET" in taken else set()
        assert set(paths.methods(path) or ()) == taken, template
    assert described["security"] == [{"bearer": []}]
    assert described["paths"]["/openapi.json"]["get"]["security"] == []


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("POST", "/v2/health/live", "GET, HEAD"),
        ("DELETE", "/v2/models/iris", "GET, HEAD"),
        ("GET", "/v2/models/team-a/iris/versions/iris-r2/infer", "POST"),
        ("GET", "/v1/chat/completions", "POST"),
        ("PUT", "/v1/models", "GET, HEAD"),
    ],
)
def test_a_method_a_path_does_not_take_is_405_naming_those_it_does(
    method: str, path: str, allowed: str
) -> None:
    answer = _ask(method, path)
    assert answer.status_code == 405
    assert answer.headers["allow"] == allowed
    error = answer.json()["error"]  # the OpenAI API's error object on /v1, a string on v2
    message = error["message"] if path.startswith("/v1/") else error
    assert f"takes {allowed}, not {method}" in message


def test_the_description_is_served() -> None:
    answer = _ask("GET", "/openapi.json")
    assert answer.status_code == 200
    assert answer.json()["openapi"] == "3.1.0"
    assert "securitySchemes" not in answer.json()["components"]  # auth is off
