"""Canary rollouts end to end: a good revision is promoted step by step, a bad one rolled back."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.platform.conftest import API, Platform, wait_for
from tests.traffic import flaky_manifest
from tests.traffic import steady_load as load_through

CANARY = (
    "  rollout:\n"
    "    strategy: Canary\n"
    "    steps: [{weight: 20, pauseSeconds: 2}, {weight: 60, pauseSeconds: 2}]\n"
    "    analysis: {minRequests: 20, maxLatencyP99Ms: 2000}\n"
)


def flaky(path: Path, name: str, fail: bool) -> Path:
    path.write_text(flaky_manifest(name, fail, CANARY))
    return path


@contextmanager
def steady_load(platform: Platform, name: str) -> Iterator[Counter[str]]:
    with load_through(f"{platform.gateway}/v2/models/{name}/infer") as outcomes:
        yield outcomes


def events(platform: Platform, name: str) -> list[str]:
    reply = httpx.get(f"{platform.api}{API}/namespaces/default/models/{name}/events")
    return [f"{e['reason']}: {e['message']}" for e in reply.json()["items"]]


def rollout_phase(platform: Platform, name: str) -> str | None:
    rollout = platform.model(name)["status"].get("rollout") or {}
    return rollout.get("phase")


def wait_phase(platform: Platform, name: str, phase: str, timeout: float) -> None:
    """Until the rollout of ``name`` is in ``phase``; past ``timeout``, fail with where it is
    and the Model's events (a rollout that went elsewhere says why there)."""
    try:
        wait_for(lambda: rollout_phase(platform, name) == phase, f"{name} {phase}", timeout)
    except AssertionError as exc:
        rollout = platform.model(name)["status"].get("rollout")
        raise AssertionError(
            f"{exc}; rollout: {rollout}; events: {events(platform, name)}"
        ) from exc


def test_good_canary_is_promoted_step_by_step(platform: Platform, tmp_path: Path) -> None:
    platform.cli("apply", "-f", str(flaky(tmp_path / "m.yaml", "canary-good", fail=False)))
    platform.wait_condition("canary-good", "Ready", "True", "RevisionReady")
    with steady_load(platform, "canary-good") as outcomes:
        wait_for(lambda: sum(outcomes.values()) > 20, "traffic", 30)
        changed = flaky(tmp_path / "m.yaml", "canary-good", fail=False).read_text()
        (tmp_path / "m.yaml").write_text(changed + "  batching: {maxBatchSize: 4}\n")
        platform.cli("apply", "-f", str(tmp_path / "m.yaml"))
        wait_phase(platform, "canary-good", "Promoted", 90)
    assert [k for k in outcomes if not k.startswith("200")] == []
    assert {k.split()[1] for k in outcomes} == {"canary-good-r1", "canary-good-r2"}
    status = platform.model("canary-good")["status"]
    assert status["stableRevision"] == "canary-good-r2"
    assert status["rollout"]["lastAnalysis"]["passed"] is True
    history = "\n".join(events(platform, "canary-good"))
    assert "RolloutStarted" in history
    assert "TrafficShifted: canary-good-r1 80%, canary-good-r2 20%" in history
    assert "RolloutStepPassed: step 1 passed; canary-good-r2 now takes 60%" in history
    assert "RolloutPromoted" in history
    platform.wait_condition("canary-good", "Ready", "True", "RevisionReady")
    platform.wait_condition("canary-good", "RolloutProgressing", "False", "Promoted")


def test_bad_canary_is_rolled_back_with_the_failing_metric(
    platform: Platform, tmp_path: Path
) -> None:
    platform.cli("apply", "-f", str(flaky(tmp_path / "m.yaml", "canary-bad", fail=False)))
    platform.wait_condition("canary-bad", "Ready", "True", "RevisionReady")
    with steady_load(platform, "canary-bad") as outcomes:
        platform.cli("apply", "-f", str(flaky(tmp_path / "m.yaml", "canary-bad", fail=True)))
        wait_phase(platform, "canary-bad", "RolledBack", 90)
        before = sum(outcomes.values())
        wait_for(lambda: sum(outcomes.values()) > before + 50, "more traffic", 30)
        after_rollback = Counter(outcomes)
    stalled = platform.condition("canary-bad", "Stalled")
    assert stalled["reason"] == "RolledBack"
    assert "errorRate" in stalled["message"]
    assert "AnalysisFailed" in "\n".join(events(platform, "canary-bad"))
    status = platform.model("canary-bad")["status"]
    assert status["stableRevision"] == "canary-bad-r1"
    failed = {m["name"] for m in status["rollout"]["lastAnalysis"]["metrics"] if not m["passed"]}
    assert "errorRate" in failed
    # The canary's failures were answered by the stable revision: no client saw one.
    assert [k for k in after_rollback if not k.startswith("200")] == []
    assert {k.split()[1] for k in after_rollback} == {"canary-bad-r1"}
    wait_for(lambda: not platform.replica_pids("canary-bad-r2"), "canary scaled down", 30)


def test_rollout_commands_steer_a_canary(platform: Platform, tmp_path: Path) -> None:
    slow_steps = CANARY.replace("pauseSeconds: 2", "pauseSeconds: 600")
    first = flaky(tmp_path / "m.yaml", "steered", fail=False)
    first.write_text(first.read_text().replace(CANARY, slow_steps))
    platform.cli("apply", "-f", str(first))
    platform.wait_condition("steered", "Ready", "True", "RevisionReady")
    second = tmp_path / "m2.yaml"
    second.write_text(first.read_text() + "  batching: {maxBatchSize: 4}\n")
    platform.cli("apply", "-f", str(second))
    wait_phase(platform, "steered", "Progressing", 60)
    wait_for(
        lambda: "steered-r2 20%" in platform.cli("rollout", "status", "steered").stdout, "20%", 30
    )
    shown = platform.cli("rollout", "status", "steered").stdout
    assert "Phase:     Progressing (step 1/2)" in shown
    assert "Traffic:   steered-r1 80%, steered-r2 20%" in shown

    assert platform.cli("rollout", "pause", "steered").stdout.strip().endswith("pause requested")
    wait_phase(platform, "steered", "Paused", 30)
    platform.cli("rollout", "resume", "steered")
    wait_phase(platform, "steered", "Progressing", 30)
    platform.cli("rollout", "promote", "steered")
    wait_phase(platform, "steered", "Promoted", 30)
    assert platform.model("steered")["status"]["stableRevision"] == "steered-r2"

    undo = platform.cli("rollout", "undo", "steered")
    assert "returning to the spec of steered-r1" in undo.stdout
    wait_for(
        lambda: platform.model("steered")["status"].get("canaryRevision") == "steered-r3",
        "r3 canary",
        60,
    )
    platform.cli("rollout", "abort", "steered")
    wait_phase(platform, "steered", "RolledBack", 30)
    history = platform.cli("rollout", "history", "steered").stdout
    for line in (
        "steered-r1",
        "steered-r2",
        "steered-r3",
        "RolloutPaused",
        "RolloutResumed",
        "RolloutPromoted",
        "RolloutAborted",
    ):
        assert line in history
    revisions = httpx.get(
        f"{platform.api}{API}/namespaces/default/models/steered/revisions"
    ).json()["items"]
    assert revisions[0]["digest"] == revisions[2]["digest"]  # r3 serves r1's spec again


def test_canary_that_predicts_differently_is_rolled_back_on_shadow_traffic(
    platform: Platform, tmp_path: Path
) -> None:
    mirrored = CANARY.replace("minRequests: 20,", "minRequests: 20, shadowPercent: 100,")
    first = flaky(tmp_path / "m.yaml", "shadowed", fail=False)
    first.write_text(first.read_text().replace(CANARY, mirrored))
    platform.cli("apply", "-f", str(first))
    platform.wait_condition("shadowed", "Ready", "True", "RevisionReady")
    different = tmp_path / "m2.yaml"
    different.write_text(first.read_text().replace("fail: 'false'", "fail: 'false', label: '2'"))
    with steady_load(platform, "shadowed") as outcomes:
        platform.cli("apply", "-f", str(different))
        wait_phase(platform, "shadowed", "RolledBack", 90)
    assert [k for k in outcomes if not k.startswith("200")] == []  # nothing failed for clients
    stalled = platform.condition("shadowed", "Stalled")
    assert "disagreement 1 exceeds 0.05" in stalled["message"]
    analysis = platform.model("shadowed")["status"]["rollout"]["lastAnalysis"]
    verdicts = {m["name"]: m for m in analysis["metrics"]}
    assert verdicts["disagreement"]["passed"] is False
    assert verdicts["errorRate"]["passed"] is True
