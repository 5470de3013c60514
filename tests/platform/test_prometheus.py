"""Canary analysis from a real Prometheus scraping the gateway (``modelplane up --prometheus``)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from modelplane.backends.prometheus import PrometheusSource
from modelplane.control.analysis import Window
from modelplane.errors import MetricsUnavailableError
from tests.platform.conftest import Platform, wait_for
from tests.platform.test_rollouts import CANARY, events, flaky, steady_load, wait_phase
from tests.processes import free_port
from tests.prometheus import PrometheusServer
from tests.traffic import ROW

# Steps long enough for a few scrapes each.
SCRAPED_CANARY = CANARY.replace("pauseSeconds: 2", "pauseSeconds: 5")


@pytest.fixture(scope="module")
def watched(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Platform, str]]:
    root = tmp_path_factory.mktemp("prometheus")
    gateway_port = free_port()
    prometheus = PrometheusServer(root, [f"127.0.0.1:{gateway_port}"])
    platform = Platform(
        root / "state", root / "up.log", gateway_port=gateway_port,
        options=("--prometheus", prometheus.url),
    )  # fmt: skip
    yield platform, prometheus.url
    platform.stop()
    prometheus.stop()


def scraped(url: str, promql: str) -> float | None:
    reply = httpx.get(f"{url}/api/v1/query", params={"query": promql}, timeout=5).json()
    result = reply["data"]["result"]
    return float(result[0]["value"][1]) if result else None


def windows(url: str, model: str, revisions: list[str], since: datetime) -> dict[str, Window]:
    async def read() -> dict[str, Window]:
        source = PrometheusSource(url)
        try:
            return await source.windows(model, revisions, since, datetime.now(UTC))
        finally:
            await source.close()

    return asyncio.run(read())


def canary_model(path: Path, name: str, fail: bool) -> Path:
    flaky(path, name, fail)
    path.write_text(path.read_text().replace(CANARY, SCRAPED_CANARY))
    return path


def test_windows_match_what_the_gateway_counted(
    watched: tuple[Platform, str], tmp_path: Path
) -> None:
    platform, url = watched
    platform.cli("apply", "-f", str(flaky(tmp_path / "m.yaml", "counted", fail=False)))
    platform.wait_condition("counted", "Ready", "True", "RevisionReady")
    series = 'modelplane_gateway_analysis_requests_total{model="default/counted"}'
    wait_for(lambda: scraped(url, f"sum({series})") == 0, "series scraped at zero", 30)
    since = datetime.now(UTC)
    for _ in range(200):
        assert platform.infer("counted", [ROW]).status_code == 200
    wait_for(lambda: scraped(url, f"sum({series})") == 200, "200 requests scraped", 30)
    found = windows(url, "default/counted", ["counted-r1", "no-such-revision"], since)
    assert set(found) == {"counted-r1"}
    window = found["counted-r1"]
    # increase() extrapolates from the samples inside the window to both of its ends: a little
    # over what happened, or (when the first sample in the window is already above zero and
    # the extrapolation stops at the counter's zero) a little under.
    assert 180 <= window.requests <= 240, window
    assert window.errors == 0
    assert window.p99_ms is not None
    assert 0 < window.p99_ms < 1000
    assert window.compared == 0


def test_bad_canary_is_rolled_back_on_prometheus_numbers(
    watched: tuple[Platform, str], tmp_path: Path
) -> None:
    platform, _ = watched
    path = canary_model(tmp_path / "m.yaml", "scraped-bad", fail=False)
    platform.cli("apply", "-f", str(path))
    platform.wait_condition("scraped-bad", "Ready", "True", "RevisionReady")
    with steady_load(platform, "scraped-bad") as outcomes:
        platform.cli("apply", "-f", str(canary_model(path, "scraped-bad", fail=True)))
        wait_phase(platform, "scraped-bad", "RolledBack", 90)
    assert [k for k in outcomes if not k.startswith("200")] == []
    analysis = platform.model("scraped-bad")["status"]["rollout"]["lastAnalysis"]
    failed = {m["name"]: m for m in analysis["metrics"] if not m["passed"]}
    assert failed["errorRate"]["value"] > 0.9  # every canary attempt failed
    assert "AnalysisFailed" in "\n".join(events(platform, "scraped-bad"))


def test_good_canary_is_promoted_on_prometheus_numbers(
    watched: tuple[Platform, str], tmp_path: Path
) -> None:
    platform, _ = watched
    path = canary_model(tmp_path / "m.yaml", "scraped-good", fail=False)
    platform.cli("apply", "-f", str(path))
    platform.wait_condition("scraped-good", "Ready", "True", "RevisionReady")
    with steady_load(platform, "scraped-good") as outcomes:
        path.write_text(path.read_text() + "  batching: {maxBatchSize: 4}\n")
        platform.cli("apply", "-f", str(path))
        wait_phase(platform, "scraped-good", "Promoted", 90)
    assert [k for k in outcomes if not k.startswith("200")] == []
    analysis = platform.model("scraped-good")["status"]["rollout"]["lastAnalysis"]
    requests = analysis["metrics"]
    assert analysis["passed"] is True
    assert {m["name"] for m in requests} >= {"errorRate", "latencyP99Ms"}


def test_an_unreachable_prometheus_is_a_clear_error() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    since = datetime(2026, 1, 1, tzinfo=UTC)
    with pytest.raises(MetricsUnavailableError, match=f"prometheus at {url}"):
        windows(url, "default/m", ["m-r1"], since)
