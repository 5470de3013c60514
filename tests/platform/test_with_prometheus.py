"""`modelplane up --with-prometheus`: a real Prometheus beside the platform that finds the
gateway and every replica through the targets file, and answers every query of the Grafana
dashboards in deploy/grafana with data."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.platform.conftest import Platform, manifest, wait_for
from tests.processes import free_port
from tests.traffic import steady_load

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = sorted((ROOT / "deploy" / "grafana").glob("*.json"))


@pytest.fixture(scope="module")
def beside(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Platform, str]]:
    root = tmp_path_factory.mktemp("beside")
    port = free_port()
    running = Platform(
        root / "state",
        root / "up.log",
        options=("--with-prometheus", "--prometheus-port", str(port)),
    )
    yield running, f"http://127.0.0.1:{port}"
    running.stop()


def _query(prometheus: str, promql: str) -> list[dict[str, Any]]:
    reply = httpx.get(f"{prometheus}/api/v1/query", params={"query": promql}, timeout=10)
    assert reply.status_code == 200, f"{promql}: {reply.text}"
    result: list[dict[str, Any]] = reply.json()["data"]["result"]
    return result


def _targets(platform: Platform) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = json.loads(
        (platform.state_dir / "prometheus" / "targets.json").read_text()
    )
    return found


def _runtime_revisions(platform: Platform) -> set[str]:
    return {
        g["labels"]["revision"]
        for g in _targets(platform)
        if g["labels"]["job"] != "modelplane-gateway"
    }


def test_prometheus_follows_replicas_and_every_dashboard_query_has_data(
    beside: tuple[Platform, str], iris_dir: Path, tmp_path: Path
) -> None:
    platform, prometheus = beside
    path = manifest(tmp_path / "m.yaml", "dash", iris_dir / "model.onnx")
    assert platform.cli("apply", "-f", str(path)).returncode == 0
    platform.wait_condition("dash", "Ready", "True", "RevisionReady")
    wait_for(lambda: _runtime_revisions(platform) == {"dash-r1"}, "dash-r1 in the targets", 10)

    def scraped(revision: str) -> bool:
        up = _query(prometheus, f'up{{job="modelplane-runtime", revision="{revision}"}}')
        return bool(up) and up[0]["value"][1] == "1"

    wait_for(lambda: scraped("dash-r1"), "Prometheus scraping the replica of dash-r1", 30)

    # A canary at 50% with every stable request mirrored to it: every series the dashboards
    # read exists, the rollout's included.
    # (an analysis that never has enough requests to judge: a rollback would stop dash-r2)
    canary = (
        "{steps: [{weight: 50, pauseSeconds: 600}],"
        " analysis: {shadowPercent: 100, minRequests: 1000000}}"
    )
    changed = manifest(
        tmp_path / "m.yaml", "dash", iris_dir / "model.onnx",
        extra="  batching: {maxBatchSize: 8}\n", rollout=canary,
    )  # fmt: skip
    with steady_load(f"{platform.gateway}/v2/models/dash/infer") as outcomes:
        assert platform.cli("apply", "-f", str(changed)).returncode == 0
        wait_for(lambda: _runtime_revisions(platform) == {"dash-r1", "dash-r2"},
                 "both revisions in the targets", 30)  # fmt: skip
        wait_for(lambda: scraped("dash-r2"), "Prometheus scraping the replica of dash-r2", 30)
        time.sleep(8)  # a few scrapes of traffic on both revisions
        missing = []
        for board in DASHBOARDS:
            for panel in json.loads(board.read_text())["panels"]:
                for target in panel["targets"]:
                    expr = (
                        target["expr"].replace("$__rate_interval", "30s")
                        .replace("$namespace", "default").replace("$name", "dash")
                    )  # fmt: skip
                    values = [float(s["value"][1]) for s in _query(prometheus, expr)]
                    if not any(math.isfinite(v) for v in values):
                        missing.append(f"{board.name} / {panel['title']}: {expr}")
    assert missing == []
    assert [k for k in outcomes if not k.startswith("200")] == []


def test_a_model_s_charts_are_read_from_prometheus_when_there_is_one(
    beside: tuple[Platform, str], iris_dir: Path, tmp_path: Path
) -> None:
    platform, _ = beside
    path = manifest(tmp_path / "m.yaml", "charted", iris_dir / "model.onnx")
    assert platform.cli("apply", "-f", str(path)).returncode == 0
    platform.wait_condition("charted", "Ready", "True", "RevisionReady")
    url = f"{platform.api}/apis/metrics.modelplane.io/v1alpha1/namespaces/default/models/charted"

    def busy() -> list[dict[str, Any]]:
        document = httpx.get(url, timeout=10).json()
        assert document["source"] == "prometheus", document.get("warning")
        return [
            p for r in document["revisions"] if r["revision"] == "charted-r1"
            for p in r["points"] if p["requestsPerSecond"] and p["p99Ms"] is not None
        ]  # fmt: skip

    def joined() -> bool:  # the platform's own samples start a step or two after Prometheus's
        return any(p["readyReplicas"] == 1 and p["traffic"] == 100 for p in busy())

    with steady_load(f"{platform.gateway}/v2/models/charted/infer", clients=1):
        wait_for(lambda: len(busy()) >= 2, "points with traffic from Prometheus", 60)
        wait_for(joined, "Prometheus's points joined with the platform's replicas", 30)
    points = busy()
    # Rates and latencies as Prometheus computes them: an error ratio where there were requests,
    # the median no slower than the 99th percentile.
    assert all(p["errorRate"] is None or 0 <= p["errorRate"] <= 1 for p in points), points
    assert all(p["p50Ms"] <= p["p99Ms"] for p in points if p["p50Ms"] is not None), points
    # Replicas and traffic, which Prometheus does not have, come from the platform's samples.
    assert any(p["readyReplicas"] == 1 and p["traffic"] == 100 for p in points), points
