"""SLOs on the embedded platform, end to end: a Model whose requests fail breaches its SLO (from
the Prometheus beside the platform, or from the gateway's own counts without one), a spent
budget under ``freeze`` holds a new spec while ``rollout undo`` and the override go through;
and the shipped Prometheus rules, loaded into a real Prometheus scraping the platform's
gateway, record the error ratios and page on a fast burn."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from modelplane.apiserver.releases import RELEASES_PREFIX as RELEASES
from modelplane.backends.kubernetes.monitoring import monitoring_files, rules_file
from modelplane.backends.slo_rules import (
    ALERT,
    BUDGET,
    LATENCY_ALERT,
    LATENCY_BUDGET,
    dump_yaml,
    error_ratio,
    slo_rules,
    slow_ratio,
)
from tests.platform.conftest import API, Platform, running_in, wait_for
from tests.processes import free_port
from tests.prometheus import PrometheusServer
from tests.traffic import flaky_manifest, steady_load

ROOT = Path(__file__).resolve().parents[2]
IMMEDIATE = "  rollout: {strategy: Immediate}\n"
# A day's window: its fastest alert looks at the last 2 minutes and 10 seconds.
SLO = "  slo: {availability: 0.99, window: 1d, freeze: true}\n"
UNFROZEN = "  slo: {availability: 0.99, window: 1d}\n"
OVERRIDE = "modelplane.io/freeze-override"


@pytest.fixture(scope="module")
def beside(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    port = str(free_port())
    options = ("--with-prometheus", "--prometheus-port", port)
    yield from running_in(tmp_path_factory, "slo", options=options)


def apply(platform: Platform, path: Path, text: str) -> None:
    path.write_text(text)
    applied = platform.cli("apply", "-f", str(path))
    assert applied.returncode == 0, applied.stderr


def serving(platform: Platform, name: str, revision: str) -> None:
    def check() -> bool:
        status = platform.model(name)["status"]
        ready = platform.condition(name, "Ready").get("status") == "True"
        return ready and status.get("stableRevision") == revision

    wait_for(check, f"{name} served by {revision}", 60)


def served_with_slo(platform: Platform, path: Path, name: str, fail: bool) -> None:
    """``name`` failing every request or none, with a day's SLO (no freeze), served."""
    apply(platform, path, flaky_manifest(name, fail, IMMEDIATE + UNFROZEN))
    serving(platform, name, f"{name}-r1")


def events(platform: Platform, name: str) -> dict[str, str]:
    reply = httpx.get(f"{platform.api}{API}/namespaces/default/models/{name}/events", timeout=10)
    return {e["reason"]: e["message"] for e in reply.json()["items"]}


def test_the_shipped_rules_are_rendered_and_pass_promtool(tmp_path: Path) -> None:
    shipped = ROOT / "deploy" / "prometheus" / "slo-rules.yaml"
    assert shipped.read_text() == rules_file(), "stale: run scripts/render-deploy"
    rule = yaml.safe_load(monitoring_files("modelplane-system")["slo-rules.yaml"])
    assert rule["kind"] == "PrometheusRule"
    (tmp_path / "operator.yaml").write_text(yaml.safe_dump(rule["spec"]))
    checked = subprocess.run(
        ["promtool", "check", "rules", str(shipped), str(tmp_path / "operator.yaml")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_a_model_failing_fast_breaches_and_freezes_but_undo_and_an_override_release(
    beside: Platform, tmp_path: Path
) -> None:
    platform, path = beside, tmp_path / "frozen.yaml"
    apply(platform, path, flaky_manifest("frozen", False, IMMEDIATE + SLO))
    serving(platform, "frozen", "frozen-r1")
    apply(platform, path, flaky_manifest("frozen", True, IMMEDIATE + SLO))
    serving(platform, "frozen", "frozen-r2")
    with steady_load(f"{platform.gateway}/v2/models/frozen/infer", clients=1) as outcomes:
        breached = platform.wait_condition("frozen", "SLOBreached", "True", "ErrorBudgetSpent")
    assert outcomes["500 frozen-r2"] > 0
    slo = platform.model("frozen")["status"]["slo"]
    assert slo["source"] == "prometheus"
    assert slo["availability"] == 0
    assert slo["budgetRemaining"] == -99
    assert "page: 14.4x over 2m and 10s" in slo["alerts"]
    assert "availability 0 against 0.99" in breached["message"]
    assert "ErrorBudgetSpent" in events(platform, "frozen")

    # A new spec is held: no new revision, the stable one keeps serving.
    apply(platform, path, flaky_manifest("frozen", False, IMMEDIATE + SLO, label=1))
    stalled = platform.wait_condition("frozen", "Stalled", "True", "ReleaseFrozen")
    assert "the error budget over 1d is spent" in stalled["message"]
    assert OVERRIDE in stalled["message"]
    status = platform.model("frozen")["status"]
    assert [r["name"] for r in status["revisions"]] == ["frozen-r2"]
    answer = httpx.post(f"{platform.gateway}/v2/models/frozen/infer", json={}, timeout=10)
    assert answer.headers["x-modelplane-revision"] == "frozen-r2"

    # A rollback to r1's spec restores rather than risks: it goes through.
    undone = platform.cli("rollout", "undo", "frozen")
    assert undone.returncode == 0, undone.stderr
    serving(platform, "frozen", "frozen-r3")
    assert platform.condition("frozen", "Stalled")["status"] == "False"
    assert platform.model("frozen")["spec"]["slo"]["freeze"] is True  # the undo kept the SLO

    # The override lets a change through, and says so with its reason.
    reason = "INC-7: the fix for the outage"
    overridden = flaky_manifest(
        "frozen", False, IMMEDIATE + SLO, label=2, annotations={OVERRIDE: reason}
    )
    apply(platform, path, overridden)
    serving(platform, "frozen", "frozen-r4")
    told = events(platform, "frozen")
    assert told["FreezeOverridden"] == (
        f"frozen-r4 released while the error budget over 1d is spent: {reason}"
    )

    # The release history keeps both: the override on its release, and the breach (still
    # open: a day's budget stays spent) on the revision that was stable when it began.
    shown = platform.cli("releases", "-o", "wide")
    assert shown.returncode == 0, shown.stderr
    rows = {line.split()[1]: line for line in shown.stdout.splitlines() if "frozen-r" in line}
    assert f"released through a freeze: {reason}" in rows["frozen-r4"]
    report = httpx.get(f"{platform.api}{RELEASES}/namespaces/default/releases", timeout=10).json()
    assert {r["revision"]: r.get("freezeOverride") for r in report["items"]}["frozen-r4"] == reason
    breaches = [
        (i["model"], i["revision"], i["restored"], i["reason"]) for i in report["incidents"]
    ]
    assert breaches == [("frozen", "frozen-r2", None, "ErrorBudgetSpent")]
    breached = shown.stdout.split("SLO BREACHED ON")[-1].split()
    assert breached[breached.index("frozen-r2") + 2 :][:2] == ["-", "-"]  # not restored yet


def query(prometheus: PrometheusServer, promql: str) -> dict[str, float]:
    """An instant vector by its ``model`` label."""
    return {s["metric"].get("model", ""): float(s["value"][1]) for s in prometheus.query(promql)}


def test_the_rules_record_error_and_slow_ratios_and_page_for_the_failing_models_only(
    beside: Platform, tmp_path: Path
) -> None:
    platform = beside
    quick = "  slo: {availability: 0.99, window: 1d, latencyP99Ms: 1000}\n"
    apply(platform, tmp_path / "ok.yaml", flaky_manifest("steady", False, IMMEDIATE + quick))
    served_with_slo(platform, tmp_path / "bad.yaml", "failing", True)
    # Every answer takes 30 ms against an objective of 10: all of them slow, none failing.
    within = "  slo: {availability: 0.99, window: 1d, latencyP99Ms: 10}\n"
    apply(platform, tmp_path / "slow.yaml",
          flaky_manifest("sluggish", False, IMMEDIATE + within, delay_ms=30))  # fmt: skip
    for name in ("steady", "sluggish"):
        serving(platform, name, f"{name}-r1")
    rules = tmp_path / "rules.yaml"
    rules.write_text(dump_yaml(slo_rules(timedelta(days=1))))  # windows scaled to a day's
    gateway = platform.gateway.removeprefix("http://")
    prometheus = PrometheusServer(tmp_path, [gateway], rules=[rules])
    fastest = timedelta(seconds=10)
    models = ("steady", "failing", "sluggish")

    def recorded() -> dict[str, Any]:
        found = {}
        for name in (error_ratio(fastest), BUDGET, slow_ratio(fastest), LATENCY_BUDGET):
            values = query(prometheus, name)
            found[name] = {m: values.get(f"default/{m}") for m in models}
        return found

    def paging(alert: str) -> set[str]:
        firing = f'ALERTS{{alertname="{alert}", alertstate="firing", severity="page"}}'
        return {a["metric"]["model"] for a in prometheus.query(firing)}

    try:
        with (
            steady_load(f"{platform.gateway}/v2/models/steady/infer", clients=1),
            steady_load(f"{platform.gateway}/v2/models/failing/infer", clients=1),
            steady_load(f"{platform.gateway}/v2/models/sluggish/infer", clients=1),
        ):
            budget = pytest.approx(0.01)
            expected = {
                error_ratio(fastest): {"steady": 0.0, "failing": 1.0, "sluggish": 0.0},
                BUDGET: dict.fromkeys(models, budget),
                # Only Models with a latency objective have a slow ratio.
                slow_ratio(fastest): {"steady": 0.0, "failing": None, "sluggish": 1.0},
                LATENCY_BUDGET: {"steady": budget, "failing": None, "sluggish": budget},
            }
            wait_for(lambda: recorded() == expected, "the error and slow ratios recorded", 60)
            wait_for(lambda: paging(ALERT) and paging(LATENCY_ALERT), "the pages firing", 60)
            errors, slow = paging(ALERT), paging(LATENCY_ALERT)
    finally:
        prometheus.stop()
    assert (errors, slow) == ({"default/failing"}, {"default/sluggish"})


@pytest.fixture(scope="module")
def alone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    yield from running_in(tmp_path_factory, "alone")


def test_without_prometheus_the_gateways_own_counts_measure_and_say_what_they_miss(
    alone: Platform, tmp_path: Path
) -> None:
    platform = alone
    served_with_slo(platform, tmp_path / "m.yaml", "counted", True)
    with steady_load(f"{platform.gateway}/v2/models/counted/infer", clients=1):
        breached = platform.wait_condition("counted", "SLOBreached", "True", "ErrorBudgetSpent")
    slo_status = platform.model("counted")["status"]["slo"]
    assert slo_status["source"].startswith("gateway")
    assert slo_status["availability"] == 0
    # Up for less than a day: the window is counted over what the gateway has seen.
    assert "1d" in slo_status["uncovered"]
    assert "counted since the platform started, not over" in breached["message"]
