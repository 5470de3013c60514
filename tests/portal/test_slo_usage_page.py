"""SLOs and usage in the portal, in a real Chromium against a real ``modelplane up --auth``: a
Model whose requests all fail shows its breach, its spent budget and the release freeze (on,
holding a change, overridden) on its page; the Releases page shows each team's error budgets
and what its Models used after real requests, and a key of one team only that team's."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.platform.conftest import API, Platform, running_in, wait_for
from tests.platform.test_auth import create_key
from tests.portal.conftest import signed_in
from tests.security.conftest import admin_key
from tests.traffic import BODY, flaky_manifest

USAGE = "/apis/usage.modelplane.io/v1alpha1"
TEAM, OTHER = "slo-team", "other-team"
# A day's window: the budget of 1% is spent at once when every request fails.
SLO = "  rollout: {strategy: Immediate}\n  slo: {availability: 0.99, window: 1d, freeze: true}\n"
IMMEDIATE = "  rollout: {strategy: Immediate}\n"
FAILED, ANSWERED = 12, 5  # requests sent to TEAM's failing Model and to OTHER's steady one
LONG = 60_000  # ms: replicas start, the controller measures every few seconds
OVERRIDE = "modelplane.io/freeze-override"
OVERSPENT = re.compile(r"^-\d+% left, overspent$")  # most requests failed: far beyond the 1%


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    yield from running_in(tmp_path_factory, "slo-usage-page", options=("--auth",))


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def model(platform: Platform, key: str, namespace: str, name: str) -> dict[str, Any]:
    reply = httpx.get(f"{platform.api}{API}/namespaces/{namespace}/models/{name}",
                      headers=bearer(key), timeout=10)  # fmt: skip
    assert reply.status_code == 200, reply.text
    return dict(reply.json())


def condition(found: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in found["status"].get("conditions", []) if c["type"] == type_), {})


def apply(platform: Platform, key: str, path: Path, text: str) -> None:
    path.write_text(text)
    applied = platform.cli("apply", "-f", str(path), key=key)
    assert applied.returncode == 0, applied.stderr


def send(platform: Platform, key: str, namespace: str, name: str, times: int, status: int) -> None:
    with httpx.Client(headers=bearer(key), timeout=30) as client:
        for _ in range(times):
            reply = client.post(f"{platform.gateway}/v2/models/{namespace}/{name}/infer", json=BODY)
            assert reply.status_code == status, reply.text


@pytest.fixture(scope="module")
def served(guarded: Platform, tmp_path_factory: pytest.TempPathFactory) -> str:
    """TEAM's ``failing`` (an SLO with freeze; every request fails) has spent its budget, and
    OTHER's ``steady`` (no SLO) answered; the admin key."""
    key, folder = admin_key(guarded), tmp_path_factory.mktemp("manifests")
    apply(guarded, key, folder / "failing.yaml", flaky_manifest("failing", True, SLO, TEAM))
    apply(guarded, key, folder / "steady.yaml", flaky_manifest("steady", False, IMMEDIATE, OTHER))
    for namespace, name in ((TEAM, "failing"), (OTHER, "steady")):
        wait_for(lambda n=namespace, m=name: condition(model(guarded, key, n, m), "Ready").get(
            "status") == "True", f"{namespace}/{name} ready", 90)  # fmt: skip
    send(guarded, key, TEAM, "failing", FAILED, 500)
    send(guarded, key, OTHER, "steady", ANSWERED, 200)
    spent = {"status": "True", "reason": "ErrorBudgetSpent"}
    wait_for(lambda: condition(model(guarded, key, TEAM, "failing"), "SLOBreached").items()
             >= spent.items(), "failing breaches its SLO", 60)  # fmt: skip
    return key


def usage(platform: Platform, key: str, namespace: str = "") -> dict[str, Any]:
    where = f"/namespaces/{namespace}" if namespace else ""
    reply = httpx.get(f"{platform.api}{USAGE}{where}/usage?since=30d", headers=bearer(key))
    assert reply.status_code == 200, reply.text
    return dict(reply.json())


def shown(share: float, digits: int) -> str:
    """A share as the portal writes it: a percentage to ``digits`` significant digits."""
    return f"{share * 100:.{digits}g}%"


def test_a_failing_models_page_shows_its_breach_its_spent_budget_and_the_freeze(
    guarded: Platform, served: str, page: Page, shots: Path, tmp_path: Path
) -> None:
    signed_in(page, served).goto(f"{guarded.api}/#/models/{TEAM}/failing")
    panel = page.get_by_test_id("slo-panel")
    expect(panel.get_by_test_id("slo-objective")).to_contain_text(
        "99% of requests succeed, over 1d", timeout=LONG
    )
    breach = panel.get_by_test_id("slo-breach")
    expect(breach.locator(".badge")).to_have_text("breached: ErrorBudgetSpent")
    expect(breach).to_contain_text("the error budget over 1d is spent")
    budget = panel.get_by_role("meter", name="Error budget remaining")
    expect(budget).to_have_attribute("aria-valuetext", OVERSPENT)
    expect(panel.locator(".budget")).to_have_class(re.compile(r"\bspent\b"))

    # The page says what status.slo says (the page's own visit, reading the Model's metadata
    # through the gateway, is one more request: wait for both to settle on the same numbers).
    def agrees() -> bool:
        measured = model(guarded, served, TEAM, "failing")["status"]["slo"]
        said = (panel.get_by_test_id("slo-requests").inner_text(),
                panel.get_by_test_id("slo-availability").inner_text(),
                budget.get_attribute("aria-valuetext"))  # fmt: skip
        return said == (f"{measured['requests']} over 1d (counted by the gateway since the "
                        "platform started)", f"{shown(measured['availability'], 5)} against 99%",
                        f"{shown(measured['budgetRemaining'], 4)} left, overspent")  # fmt: skip

    wait_for(agrees, "the SLO panel to show status.slo", 30)
    measured = model(guarded, served, TEAM, "failing")["status"]["slo"]
    # Up for minutes: the day's window is counted over what the gateway has seen.
    expect(panel.get_by_test_id("slo-uncovered")).to_contain_text("1d")
    windows = [rate["window"] for rate in measured["burnRates"]]
    expect(panel.locator("table.burn-rates tbody th")).to_have_text(windows)
    freeze = panel.get_by_test_id("slo-freeze")
    expect(freeze.locator(".badge")).to_have_text("Release freeze: on: budget spent")
    panel.screenshot(path=shots / "slo.png")

    # A new spec is held while the budget is spent, until an override lets it through.
    path = tmp_path / "failing.yaml"
    apply(guarded, served, path, flaky_manifest("failing", True, SLO, TEAM, label=1))
    expect(freeze.locator(".badge")).to_have_text("Release freeze: release frozen", timeout=LONG)
    expect(freeze).to_contain_text("keeps serving and the change waits until the budget recovers")
    reason = "INC-9: the fix for the outage"
    overridden = flaky_manifest("failing", True, SLO, TEAM, label=1, annotations={OVERRIDE: reason})
    apply(guarded, served, path, overridden)
    expect(freeze.locator(".badge")).to_have_text("Release freeze: overridden", timeout=LONG)
    expect(freeze.get_by_test_id("freeze-override")).to_have_text(f"Reason: {reason}")
    # The release history keeps the override's reason on the release it let out.
    page.goto(f"{guarded.api}/#/releases?namespace={TEAM}&model=failing")
    expect(page.locator("tr[data-revision='failing-r2']")).to_contain_text(
        f"released through a freeze: {reason}", timeout=LONG
    )


def test_the_releases_page_shows_each_teams_error_budgets_and_usage(
    guarded: Platform, served: str, page: Page, shots: Path
) -> None:
    teams = {t["namespace"]: t for t in usage(guarded, served)["teams"]}
    failing = next(m for m in teams[TEAM]["models"] if m["name"] == "failing")["summary"]
    # A visit to the Model's page reads its metadata through the gateway: one more request.
    assert failing["requests"] >= failing["serverErrors"] == FAILED
    assert failing["replicaSeconds"] > 0
    requests = str(failing["requests"])
    signed_in(page, served).goto(f"{guarded.api}/#/releases")

    budgets = page.locator(f"section[data-slo-team='{TEAM}'] tr[data-slo-model='failing']")
    expect(budgets.locator(".badge")).to_have_text("breached: ErrorBudgetSpent", timeout=LONG)
    expect(budgets.get_by_role("meter")).to_have_attribute("aria-valuetext", OVERSPENT)
    expect(page.locator(f"section[data-slo-team='{OTHER}']")).to_contain_text(
        f"No Model of {OTHER} has an SLO"
    )
    # The breach is an incident of the release history, still going on.
    breach = page.get_by_test_id("slo-breaches").locator("tr", has_text=f"{TEAM}/failing")
    expect(breach).to_contain_text("ongoing")
    expect(breach).to_contain_text("ErrorBudgetSpent")

    used = page.locator(f"section[data-usage-team='{TEAM}']")
    expect(used.locator("[data-figure='requests'] .value")).to_have_text(requests)
    expect(used.locator("[data-figure='requests'] .note")).to_contain_text(
        f"{FAILED} server errors (5xx)"
    )
    replica_hours = float(used.locator("[data-figure='replicaHours'] .value").inner_text())
    assert replica_hours > 0
    row = used.locator("tr[data-usage-model='failing']")
    expect(row.locator("[data-figure='requests']")).to_have_text(requests)
    expect(used.locator("figure.chart canvas")).to_have_count(2)
    other = page.locator(f"section[data-usage-team='{OTHER}']")
    expect(other.locator("tr[data-usage-model='steady'] [data-figure='requests']")).to_have_text(
        str(ANSWERED)
    )
    page.locator("section[aria-labelledby='usage-title']").screenshot(path=shots / "usage.png")

    # The page's filters narrow both: one team, then one Model, whose figures the tiles show.
    with page.expect_request(re.compile(rf".*{USAGE}/namespaces/{OTHER}/usage\?since=7d&step=1d$")):
        page.goto(f"{guarded.api}/#/releases?since=7d&namespace={OTHER}")
    expect(page.locator(f"section[data-usage-team='{TEAM}']")).to_have_count(0)
    expect(other.locator("[data-figure='requests'] .value")).to_have_text(str(ANSWERED))
    page.goto(f"{guarded.api}/#/releases?namespace={TEAM}&model=failing")
    expect(used.get_by_role("heading")).to_have_text(f"{TEAM}/failing")
    expect(used.locator("[data-figure='requests'] .value")).to_have_text(requests)
    budgets.get_by_role("link", name="failing").click()
    expect(page.get_by_test_id("slo-panel")).to_be_visible()


def test_a_teams_key_sees_only_its_teams_usage_and_budgets(
    guarded: Platform, served: str, page: Page
) -> None:
    viewer = create_key(guarded, served, "other-viewer", f"{OTHER}=viewer")
    assert [t["namespace"] for t in usage(guarded, viewer)["teams"]] == [OTHER]
    signed_in(page, viewer).goto(f"{guarded.api}/#/releases")
    expect(page.locator(f"section[data-usage-team='{OTHER}']")).to_be_visible(timeout=LONG)
    expect(page.locator("section[data-usage-team]")).to_have_count(1)
    expect(page.locator("section[data-slo-team]")).to_have_count(1)
    expect(page.locator(f"section[data-slo-team='{OTHER}']")).to_be_visible()

    page.goto(f"{guarded.api}/#/releases?namespace={TEAM}")
    expect(page.get_by_role("alert")).to_contain_text("needs the role viewer")
    expect(page.locator("section[data-usage-team]")).to_have_count(0)
