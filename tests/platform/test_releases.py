"""A team's releases on the embedded platform: real rollouts (promoted, undone, rolled back,
aborted) give the DORA figures, through the API and ``modelplane releases``, and a restart
changes none of them."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.platform.conftest import Platform, as_json, running_in, wait_for
from tests.traffic import flaky_manifest, steady_load

RELEASES = "/apis/releases.modelplane.io/v1alpha1"
TEAM = "fraud-team"
CANARY = (
    "  rollout:\n"
    "    strategy: Canary\n"
    "    steps: [{weight: 50, pauseSeconds: 1}]\n"
    "    analysis: {minRequests: 10, maxLatencyP99Ms: 2000}\n"
)


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    yield from running_in(tmp_path_factory, "releases")


def write(path: Path, *, fail: bool, extra: str = "", commit_time: str | None = None) -> Path:
    text = flaky_manifest("scorer", fail, CANARY + extra, namespace=TEAM)
    if commit_time is not None:
        text = text.replace(
            f"namespace: {TEAM}}}",
            f"namespace: {TEAM}, annotations: {{modelplane.io/commit-time: '{commit_time}'}}}}",
        )
    path.write_text(text)
    return path


def status(platform: Platform) -> dict[str, Any]:
    reply = httpx.get(f"{platform.api}/apis/modelplane.io/v1alpha1/namespaces/{TEAM}/models/scorer")
    return dict(reply.json()["status"])


def phase_of(platform: Platform) -> str | None:
    return (status(platform).get("rollout") or {}).get("phase")


def settled(platform: Platform, revision: str, phase: str) -> None:
    def check() -> bool:
        now = status(platform)
        field = "stableRevision" if phase == "Promoted" else "canaryRevision"
        return now.get(field) == revision and (now.get("rollout") or {}).get("phase") == phase

    try:
        wait_for(check, f"{revision} {phase}", 90)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; status: {status(platform)}") from None


OUTCOMES = ("promoted", "undone", "rolled_back", "aborted")


def release_samples(platform: Platform) -> dict[tuple[str, str], float]:
    """The team's release series on the platform's /metrics: (sample name, outcome or le)."""
    text = httpx.get(f"{platform.gateway}/metrics").text
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.labels.get("namespace") == TEAM:
                detail = sample.labels.get("outcome", sample.labels.get("le", ""))
                found[(sample.name, detail)] = sample.value
    return found


def report(platform: Platform, query: str = "") -> dict[str, Any]:
    reply = httpx.get(f"{platform.api}{RELEASES}/namespaces/{TEAM}/releases{query}")
    assert reply.status_code == 200, reply.text
    return dict(reply.json())


def test_a_teams_releases_give_its_dora_figures(platform: Platform, tmp_path: Path) -> None:
    spec = tmp_path / "scorer.yaml"
    platform.cli("apply", "-f", str(write(spec, fail=False)))
    wait_for(lambda: status(platform).get("stableRevision") == "scorer-r1", "r1 serves", 60)
    hour_ago = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    with steady_load(f"{platform.gateway}/v2/models/{TEAM}/scorer/infer"):
        # r2: a good change from a commit an hour old, promoted; then undone (r3 = r1's spec).
        good = write(spec, fail=False, extra="  batching: {maxBatchSize: 4}\n",
                     commit_time=hour_ago)  # fmt: skip
        platform.cli("apply", "-f", str(good))
        settled(platform, "scorer-r2", "Promoted")
        # Undone well after its promotion (revision times are kept to the second), so that a
        # 1 s undo window below certainly leaves r2 standing.
        time.sleep(2.5)
        assert platform.cli("rollout", "undo", "scorer", "-n", TEAM).returncode == 0
        settled(platform, "scorer-r3", "Promoted")
        # r4 fails every request: the analysis rolls it back.
        platform.cli("apply", "-f", str(write(spec, fail=True)))
        settled(platform, "scorer-r4", "RolledBack")
    # r5: aborted by its team.
    platform.cli(
        "apply", "-f", str(write(spec, fail=False, extra="  batching: {maxBatchSize: 8}\n"))
    )
    wait_for(lambda: status(platform).get("canaryRevision") == "scorer-r5", "r5 rolling", 30)
    platform.cli("rollout", "abort", "scorer", "-n", TEAM)
    settled(platform, "scorer-r5", "RolledBack")

    found = report(platform)
    outcomes = {r["revision"]: r["outcome"] for r in found["items"]}
    assert outcomes == {
        "scorer-r1": "Promoted",
        "scorer-r2": "Undone",
        "scorer-r3": "Promoted",
        "scorer-r4": "RolledBack",
        "scorer-r5": "Aborted",
    }
    items = {r["revision"]: r for r in found["items"]}
    assert items["scorer-r2"]["undoneBy"] == "scorer-r3"
    assert items["scorer-r2"]["leadTimeSeconds"] >= 3600  # from the commit, not the apply
    assert items["scorer-r1"]["leadTimeSeconds"] < 60
    assert items["scorer-r4"]["reason"] == "AnalysisFailed"
    assert 0 < items["scorer-r4"]["timeToRestoreSeconds"] < 90
    summary = found["summary"]
    assert (summary["releases"], summary["deployments"], summary["failed"]) == (5, 3, 3)
    assert summary["changeFailureRate"] == pytest.approx(0.6)
    team = found["teams"][0]
    assert team["namespace"] == TEAM
    assert team["summary"] == summary
    assert sum(bucket["deployments"] for bucket in team["trend"]) == 3
    # Undone only within the window: with a tiny one, r2 stands as a success.
    assert {r["revision"]: r["outcome"] for r in report(platform, "?undoWindow=1s")["items"]}[
        "scorer-r2"
    ] == "Promoted"

    shown = platform.cli("releases", "-n", TEAM)
    assert shown.returncode == 0, shown.stderr
    assert "60% (3/5)" in shown.stdout
    wide = platform.cli("releases", "-A", "-o", "wide").stdout
    for shown_in_wide in ("scorer-r2", "Undone", "AnalysisFailed"):
        assert shown_in_wide in wide
    assert as_json(platform.cli("releases", "-n", TEAM, "-o", "json"))["summary"] == summary

    scraped = release_samples(platform)
    counted = {o: scraped.get(("modelplane_releases_total", o)) for o in OUTCOMES}
    assert counted == {"promoted": 3, "undone": 1, "rolled_back": 1, "aborted": 1}
    assert scraped[("modelplane_release_lead_time_seconds_count", "")] == 3
    assert scraped[("modelplane_release_lead_time_seconds_bucket", "+Inf")] == 3
    assert scraped[("modelplane_release_lead_time_seconds_bucket", "60")] == 2  # not r2's hour

    platform.stop()
    platform.start()
    assert report(platform)["items"] == found["items"]  # history survives a restart


def test_a_malformed_period_is_refused_with_what_a_period_is(platform: Platform) -> None:
    reply = httpx.get(f"{platform.api}{RELEASES}/releases?since=a+month")
    assert reply.status_code == 400
    assert "30d" in reply.json()["message"]
    refused = platform.cli("releases", "--since", "1 month")
    assert refused.returncode != 0
    assert "positive whole number" in refused.stderr
