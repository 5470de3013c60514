"""`modelplane quota`: per-namespace limits at the gateway. Over its requests-per-second or
concurrency quota a tenant gets 429 with Retry-After at once, while another tenant is served as
before; quotas survive a restart and can be lifted."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.platform.conftest import Platform, wait_for
from tests.platform.test_auth import ROW, manifest
from tests.processes import scraped

REFUSED = "modelplane_gateway_refused_requests_total"

SLOW = """
import time
from pathlib import Path
from typing import ClassVar

import numpy as np


class Model:
    inputs: ClassVar = [{"name": "X", "datatype": "FP32", "shape": [-1, 4]}]

    def load(self, path: Path, parameters: dict[str, str]) -> None:
        pass

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        time.sleep(0.5)
        return {"label": np.zeros(len(inputs["X"]), dtype=np.int64)}
"""


@pytest.fixture(scope="module")
def tenants(tmp_path_factory: pytest.TempPathFactory, iris_dir: Path) -> Iterator[Platform]:
    root = tmp_path_factory.mktemp("tenants")
    running = Platform(root / "state", root / "up.log")
    uri = (iris_dir / "model.onnx").as_uri()
    slow = root / "slow.py"
    slow.write_text(SLOW)
    documents = [manifest("scorer", "team-a", uri), manifest("scorer", "team-b", uri),
                 manifest("scorer", "team-c", slow.as_uri()).replace(
                     "format: onnx", "format: python").replace(
                     "rollout:", "batching: {maxBatchSize: 1}\n  rollout:")]  # fmt: skip
    path = root / "models.yaml"
    path.write_text("---\n".join(documents))
    applied = running.cli("apply", "-f", str(path))
    assert applied.returncode == 0, applied.stderr
    for team in ("a", "b", "c"):
        wait_for(lambda t=team: _infer(running, f"team-{t}").status_code == 200,
                 f"team-{team} serving", 90)  # fmt: skip
    yield running
    running.stop()


def _infer(platform: Platform, namespace: str) -> httpx.Response:
    url = f"{platform.gateway}/v2/models/{namespace}/scorer/infer"
    return httpx.post(url, json=ROW, timeout=30)


def test_over_its_rate_a_tenant_gets_429_and_the_other_tenant_does_not(
    tenants: Platform,
) -> None:
    done = tenants.cli("quota", "set", "team-a", "--rps", "5")
    assert done.returncode == 0, done.stderr
    assert "quota of team-a: 5 requests/s" in done.stdout
    started = time.monotonic()
    a = [_infer(tenants, "team-a") for _ in range(30)]
    elapsed = time.monotonic() - started
    b = [_infer(tenants, "team-b") for _ in range(30)]
    admitted = sum(r.status_code == 200 for r in a)
    # A full bucket (5) plus what refills while they run, and no more.
    assert 5 <= admitted <= 5 + 5 * elapsed + 1, (admitted, elapsed)
    refused = [r for r in a if r.status_code == 429]
    assert len(refused) == 30 - admitted
    assert int(refused[0].headers["retry-after"]) >= 1
    assert "over its quota of 5 requests per second" in refused[0].json()["error"]
    assert Counter(r.status_code for r in b) == {200: 30}
    quota_refusals = {"model_namespace": "team-a", "reason": "quota"}
    assert scraped(tenants.gateway, REFUSED, quota_refusals) == len(refused)


def test_over_its_concurrency_a_tenant_is_refused_at_once(tenants: Platform) -> None:
    assert tenants.cli("quota", "set", "team-c", "--concurrency", "2").returncode == 0

    before = _served_and_refused(tenants, "team-c")
    results = _burst(tenants, "team-c", 6)
    assert Counter(results) == {200: 2, 429: 4}
    # The four were refused at the gateway, not queued for the replica: it saw two.
    served, refused = _served_and_refused(tenants, "team-c")
    assert (served - before[0], refused - before[1]) == (2, 4)


def _burst(platform: Platform, namespace: str, count: int) -> list[int]:
    """``count`` requests at once; their statuses."""

    async def burst() -> list[int]:
        url = f"{platform.gateway}/v2/models/{namespace}/scorer/infer"
        async with httpx.AsyncClient(timeout=30) as client:
            replies = await asyncio.gather(*(client.post(url, json=ROW) for _ in range(count)))
        return [reply.status_code for reply in replies]

    return asyncio.run(burst())


def _served_and_refused(platform: Platform, namespace: str) -> tuple[float, float]:
    """The gateway's count of requests it sent to ``namespace``'s replicas, and of those it
    refused over quota."""
    served = scraped(platform.gateway, "modelplane_gateway_requests_total",
                     {"model": f"{namespace}/scorer"}, default=0)  # fmt: skip
    refused = scraped(platform.gateway, REFUSED,
                      {"model_namespace": namespace, "reason": "quota"}, default=0)  # fmt: skip
    return served, refused


def test_a_replica_quota_holds_a_namespaces_models_back(
    tenants: Platform, iris_dir: Path, tmp_path: Path
) -> None:
    assert tenants.cli("quota", "set", "team-b", "--max-replicas", "1").returncode == 0
    path = tmp_path / "second.yaml"
    path.write_text(manifest("second", "team-b", (iris_dir / "model.onnx").as_uri()))
    assert tenants.cli("apply", "-f", str(path)).returncode == 0

    def events() -> str:
        described = tenants.cli("describe", "model", "second", "-n", "team-b")
        return described.stdout

    wait_for(lambda: "ReplicaQuotaReached" in events(), "the quota said", 30)
    assert "1 replicas wanted, 0 allowed: namespace 'team-b' may run 1 in all" in events()
    assert not tenants.replica_pids("second-r1", "team-b")  # nothing started beyond the quota
    assert _infer(tenants, "team-b").status_code == 200  # the first Model serves on

    assert tenants.cli("quota", "clear", "team-b").returncode == 0
    wait_for(
        lambda: bool(tenants.replica_pids("second-r1", "team-b")), "second started once lifted", 30
    )


def test_quotas_survive_a_restart_are_listed_checked_and_lifted(tenants: Platform) -> None:
    assert tenants.stop() == 0
    tenants.start()
    listed = tenants.cli("quota", "list")
    assert "team-a" in listed.stdout
    assert "5 requests/s" in listed.stdout
    assert "team-c" in listed.stdout
    assert "2 concurrent" in listed.stdout
    wait_for(lambda: _infer(tenants, "team-a").status_code == 200, "team-a back", 60)
    statuses = Counter(_burst(tenants, "team-a", 20))
    assert statuses[429] >= 10  # still limited after the restart: 20 at once, 5 a second

    bad = tenants.cli("quota", "set", "team-a", "--rps", "-1")
    assert bad.returncode != 0
    assert "requestsPerSecond" in bad.stderr

    assert tenants.cli("quota", "clear", "team-a").returncode == 0
    time.sleep(1.2)  # the old bucket is gone with the quota; nothing left to refill
    assert Counter(_infer(tenants, "team-a").status_code for _ in range(20)) == {200: 20}
