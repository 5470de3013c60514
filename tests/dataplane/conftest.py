"""The two servers of the data path as real processes, for the HTTP/1.1 tests: runtimes serving
the iris example and the tiny chat model, and the gateway of a ``modelplane up --auth`` routing
both to replicas of its own. Each test runs against both (``served``)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from modelplane.telemetry import names
from tests.llm.conftest import chat_runtime, llm_dir  # noqa: F401 - fixtures, shared
from tests.platform.conftest import Platform, wait_for
from tests.processes import RuntimeProcess, scraped
from tests.security.conftest import admin_key

IRIS_ROW = b'{"inputs":[{"name":"X","datatype":"FP32","shape":[1,4],"data":[5.1,3.5,1.4,0.2]}]}'
OTHER_ROW = b'{"inputs":[{"name":"X","datatype":"FP32","shape":[1,4],"data":[6.7,3.0,5.2,2.3]}]}'
INFER = "/v2/models/iris/infer"


@dataclass(frozen=True)
class Served:
    """A server of the data path as a raw client addresses it: iris on ``port``, the chat model
    on ``chat_port``, ``auth`` on every request that should pass."""

    name: str
    port: int
    chat_port: int
    auth: tuple[tuple[str, str], ...]
    in_flight: Callable[[], float]  # requests in flight, the gateway's and its replicas'
    chat_replica: str  # the URL of the runtime (replica) serving the chat model

    def generated(self) -> float:
        """Tokens the chat model's runtime generated so far."""
        return scraped(self.chat_replica, f"{names.RUNTIME_GENERATION_TOKENS}_total", default=0)

    def json_headers(self, *more: tuple[str, str]) -> list[tuple[str, str]]:
        return [("Content-Type", "application/json"), *self.auth, *more]


def replica_url(platform: Platform, revision: str) -> str:
    (pid,) = platform.replica_pids(revision)
    args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    return f"http://127.0.0.1:{int(args[args.index(b'--port') + 1])}"


@pytest.fixture(scope="session")
def gateway_platform(
    tmp_path_factory: pytest.TempPathFactory,
    iris_dir: Path,
    llm_dir: Path,  # noqa: F811 - the fixture imported above
) -> Iterator[Platform]:
    """``modelplane up --auth`` with iris and the chat model ready behind its gateway."""
    root = tmp_path_factory.mktemp("dataplane")
    running = Platform(root / "state", root / "up.log", options=("--auth",))
    key = admin_key(running)

    def ready(name: str) -> bool:
        url = f"{running.gateway}/v2/models/{name}/ready"
        return httpx.get(url, headers={"Authorization": f"Bearer {key}"}).is_success

    try:
        for manifest in (iris_dir / "iris.yaml", llm_dir / "chat.yaml"):
            applied = running.cli("apply", "-f", str(manifest), key=key)
            assert applied.returncode == 0, applied.stderr
        for name in ("iris", "tiny-chat"):
            wait_for(functools.partial(ready, name), f"{name} ready", 90)
        yield running
    finally:
        running.stop()


def _gateway(platform: Platform) -> Served:
    replicas = [replica_url(platform, revision) for revision in ("iris-r1", "tiny-chat-r1")]

    def in_flight() -> float:
        at_replicas = sum(scraped(url, names.RUNTIME_IN_FLIGHT, default=0) for url in replicas)
        return scraped(platform.gateway, names.GATEWAY_IN_FLIGHT, default=0) + at_replicas

    key = admin_key(platform)
    port = platform.gateway_port
    bearer = (("Authorization", f"Bearer {key}"),)
    return Served("gateway", port, port, bearer, in_flight, replicas[1])


def _runtimes(iris: RuntimeProcess, chat: RuntimeProcess) -> Served:
    def in_flight() -> float:
        return sum(scraped(r.url, names.RUNTIME_IN_FLIGHT, default=0) for r in (iris, chat))

    return Served("runtime", iris.port, chat.port, (), in_flight, chat.url)


@pytest.fixture(params=["runtime", "gateway"])
def served(request: pytest.FixtureRequest) -> Served:
    if request.param == "gateway":
        return _gateway(request.getfixturevalue("gateway_platform"))
    return _runtimes(
        request.getfixturevalue("iris_runtime"), request.getfixturevalue("chat_runtime")
    )
