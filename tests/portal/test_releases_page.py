"""The Releases page and the evaluation gate's verdict, in a real Chromium against a real
``modelplane up --auth``: releases made by real rollouts (promoted, undone, rolled back by a
failed gate) show the release API's figures for each team, with a key that reads every
namespace and with one that reads a single team."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Locator, Page, expect

from modelplane.cli.releases import duration
from tests.platform.conftest import Platform, running_in, wait_for
from tests.portal.conftest import signed_in
from tests.traffic import flaky_manifest, gated_manifest, write_iris_dataset

RELEASES = "/apis/releases.modelplane.io/v1alpha1"
TEAM, OTHER = "fraud-team", "team-b"
IMMEDIATE = "  rollout: {strategy: Immediate}\n"
LONG = 60_000  # ms: replicas start, gates evaluate
NONE = "\u2013"  # the dash the page shows for a figure it has not
MADE = {
    (TEAM, "scorer-r1"): "Promoted",
    (TEAM, "scorer-r2"): "Undone",
    (TEAM, "scorer-r3"): "Promoted",
    (TEAM, "gated-r1"): "Promoted",
    (TEAM, "gated-r2"): "RolledBack",
    (OTHER, "ranker-r1"): "Promoted",
}


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    yield from running_in(tmp_path_factory, "releases-page", options=("--auth",))


@pytest.fixture(scope="module")
def admin(guarded: Platform) -> str:
    return (guarded.state_dir / "admin.key").read_text().strip()


def report(platform: Platform, key: str, namespace: str = "", since: str = "30d") -> Any:
    where = f"/namespaces/{namespace}" if namespace else ""
    reply = httpx.get(f"{platform.api}{RELEASES}{where}/releases?since={since}",
                      headers={"Authorization": f"Bearer {key}"})  # fmt: skip
    assert reply.status_code == 200, reply.text
    return reply.json()


def outcomes(platform: Platform, key: str) -> dict[tuple[str, str], str]:
    return {(r["namespace"], r["revision"]): r["outcome"] for r in report(platform, key)["items"]}


def reached(platform: Platform, key: str, wanted: dict[tuple[str, str], str]) -> None:
    def check() -> bool:
        found = outcomes(platform, key)
        return all(found.get(release) == outcome for release, outcome in wanted.items())

    try:
        wait_for(check, f"releases {wanted}", 90)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; found {outcomes(platform, key)}") from None


@pytest.fixture(scope="module")
def released(guarded: Platform, admin: str, tmp_path_factory: pytest.TempPathFactory) -> Platform:
    """fraud-team: scorer-r1 promoted, scorer-r2 (from a commit an hour old) promoted and then
    undone by scorer-r3; gated-r1 promoted, gated-r2 rolled back by its evaluation gate.
    team-b: ranker-r1 promoted."""
    folder = tmp_path_factory.mktemp("manifests")

    def apply(name: str, text: str) -> None:
        (folder / f"{name}.yaml").write_text(text)
        done = guarded.cli("apply", "-f", str(folder / f"{name}.yaml"), key=admin)
        assert done.returncode == 0, done.stderr

    dataset = write_iris_dataset(folder / "iris.jsonl")
    apply("scorer", flaky_manifest("scorer", False, IMMEDIATE, namespace=TEAM))
    apply("gated", gated_manifest(0, dataset=dataset, namespace=TEAM))  # 2 of 3 right
    apply("ranker", flaky_manifest("ranker", False, IMMEDIATE, namespace=OTHER))
    first = [(TEAM, "scorer-r1"), (TEAM, "gated-r1"), (OTHER, "ranker-r1")]
    reached(guarded, admin, dict.fromkeys(first, "Promoted"))
    hour_ago = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    changed = flaky_manifest("scorer", False, IMMEDIATE + "  batching: {maxBatchSize: 4}\n",
                             namespace=TEAM)  # fmt: skip
    apply("scorer", changed.replace(
        f"namespace: {TEAM}}}",
        f"namespace: {TEAM}, annotations: {{modelplane.io/commit-time: '{hour_ago}'}}}}",
    ))  # fmt: skip
    apply("gated", gated_manifest(1, dataset=dataset, namespace=TEAM))  # 1 of 3: fails its gate
    reached(guarded, admin, {(TEAM, "scorer-r2"): "Promoted"})
    undone = guarded.cli("rollout", "undo", "scorer", "-n", TEAM, key=admin)
    assert undone.returncode == 0, undone.stderr
    reached(guarded, admin, MADE)
    return guarded


def shown(seconds: float | None) -> str:
    """A span of time as the CLI writes it."""
    return NONE if seconds is None else duration(seconds)


def rate(figures: dict[str, Any]) -> str:
    found = figures["changeFailureRate"]
    return NONE if found is None else f"{found:.0%}"


def expect_figures(team: Locator, figures: dict[str, Any]) -> None:
    """The team's tiles say what the API's figures are, as ``modelplane releases`` writes them."""
    shows = {
        "deploymentsPerDay": f"{figures['deploymentsPerDay']:.2f}",
        "leadTime": shown(figures["leadTimeSeconds"]),
        "changeFailureRate": rate(figures),
        "timeToRestore": shown(figures["timeToRestoreSeconds"]),
    }
    for name, text in shows.items():
        expect(team.locator(f"[data-figure='{name}'] .value")).to_have_text(text)
    expect(team.locator("[data-figure='changeFailureRate'] .note")).to_have_text(
        f"{figures['failed']} failed of {figures['releases']} finished"
    )


def test_the_releases_page_shows_each_teams_figures_as_the_api_gives_them(
    released: Platform, admin: str, page: Page, shots: Path
) -> None:
    found = report(released, admin)
    teams = {team["namespace"]: team for team in found["teams"]}
    fraud = teams[TEAM]["summary"]
    assert (fraud["releases"], fraud["deployments"], fraud["failed"]) == (5, 4, 2)
    signed_in(page, admin).goto(f"{released.api}/#/releases")
    for namespace, team in teams.items():
        expect_figures(page.locator(f"section[data-team='{namespace}']"), team["summary"])
    section = page.locator(f"section[data-team='{TEAM}']")

    # The trend: deployments and failures per day as bars, lead time as a line, and the same
    # numbers in a table.
    charts = section.locator("figure.chart")
    expect(charts).to_have_count(2)
    expect(charts.first.locator("canvas")).to_have_count(1)
    expect(charts.first.locator(".u-legend")).to_contain_text("deployments")
    expect(charts.first.locator(".u-legend")).to_contain_text("failures")
    busy = [b for b in teams[TEAM]["trend"] if b["releases"] or b["deployments"]]
    section.get_by_text("The trend as a table").click()
    rows = section.locator("details.trend tbody tr")
    expect(rows).to_have_count(len(busy))
    expect(rows.locator("td:nth-child(2)")).to_have_text([str(b["deployments"]) for b in busy])

    # Each Model's figures, and every release with its outcome.
    for model in teams[TEAM]["models"]:
        summary = model["summary"]
        expect(section.locator(f"tr[data-model='{model['name']}']")).to_contain_text(
            f"{rate(summary)} ({summary['failed']}/{summary['releases']})"
        )
    items = {r["revision"]: r for r in found["items"]}
    undone = page.locator("tr[data-revision='scorer-r2']")
    expect(undone.locator(".badge")).to_have_text("Undone")
    expect(undone).to_contain_text(shown(items["scorer-r2"]["leadTimeSeconds"]))
    assert items["scorer-r2"]["leadTimeSeconds"] >= 3600  # from the commit, not the apply
    expect(undone).to_contain_text(shown(items["scorer-r2"]["timeToRestoreSeconds"]))
    gated = page.locator("tr[data-revision='gated-r2']")
    expect(gated.locator(".badge")).to_have_text("RolledBack")
    expect(gated).to_contain_text("EvaluationFailed")
    page.screenshot(path=shots / "releases.png", full_page=True)
    undone.get_by_role("link", name="scorer-r3").click()
    expect(page.locator("tr[data-revision='scorer-r3']")).to_be_focused()

    # Another period and another team: each a new report from the API.
    with page.expect_request(re.compile(r".*/releases\?since=7d$")):
        page.get_by_label("Period").select_option("7d")
    week = {team["namespace"]: team for team in report(released, admin, since="7d")["teams"]}
    expect_figures(section, week[TEAM]["summary"])
    with page.expect_request(re.compile(rf".*/namespaces/{OTHER}/releases\?since=7d$")):
        page.get_by_label("Namespace").select_option(OTHER)
    expect(page.locator(f"section[data-team='{TEAM}']")).to_have_count(0)
    other = report(released, admin, namespace=OTHER, since="7d")
    expect_figures(page.locator(f"section[data-team='{OTHER}']"), other["teams"][0]["summary"])
    expect(page.locator("tr[data-revision]")).to_have_count(1)

    page.locator("tr[data-revision='ranker-r1']").get_by_role(
        "link", name=f"{OTHER}/ranker"
    ).click()
    expect(page.get_by_role("heading", name=f"{OTHER}/ranker")).to_be_visible()


def test_a_gated_models_page_shows_its_gate_verdict_and_links_to_its_releases(
    released: Platform, admin: str, page: Page, shots: Path
) -> None:
    reply = httpx.get(
        f"{released.api}/apis/modelplane.io/v1alpha1/namespaces/{TEAM}/models/gated",
        headers={"Authorization": f"Bearer {admin}"},
    )
    verdict = reply.json()["status"]["rollout"]["evaluation"]
    assert not verdict["passed"]
    signed_in(page, admin).goto(f"{released.api}/#/models/{TEAM}/gated")
    gate = page.get_by_test_id("evaluation-gate")
    expect(gate).to_have_class(re.compile(r"\bfailed\b"), timeout=LONG)
    expect(gate.locator(".badge")).to_have_text("failed: rolled back")
    expect(gate).to_contain_text("gated-r2")
    expect(gate.get_by_test_id("gate-value")).to_have_text(f"{verdict['value']:.3g}")
    expect(gate.get_by_test_id("gate-threshold")).to_have_text(f"at least {verdict['threshold']:g}")
    expect(gate.get_by_test_id("gate-examples")).to_contain_text(str(verdict["examples"]))
    expect(gate).to_contain_text(verdict["message"])
    page.locator("section[aria-labelledby='rollout-title']").screenshot(path=shots / "gate.png")

    page.get_by_role("link", name="Releases of gated").click()
    expect(page.get_by_role("heading", name=f"Releases of {TEAM}/gated")).to_be_visible()
    expect(page.locator("tr[data-revision]")).to_have_count(2, timeout=LONG)
    expect(page.locator("tr[data-revision='gated-r2'] .badge")).to_have_text("RolledBack")
    expect(page.locator("tr.picked")).to_have_attribute("data-model", "gated")


def test_a_teams_key_sees_only_its_teams_releases(
    released: Platform, admin: str, page: Page
) -> None:
    made = released.cli("auth", "keys", "create", "b-viewer", "--grant", f"{OTHER}=viewer",
                        key=admin)  # fmt: skip
    viewer = re.search(r"mpk_\S+", made.stdout)
    assert viewer, made.stdout
    page.goto(f"{released.api}/#/releases")
    expect(page.get_by_role("alert").filter(has_text="needs an API key")).to_be_visible()
    page.get_by_label("API key", exact=True).fill(viewer.group(0))
    page.get_by_role("button", name="Use key").click()
    expect(page.locator(f"section[data-team='{OTHER}']")).to_be_visible()
    expect(page.locator(f"section[data-team='{TEAM}']")).to_have_count(0)
    expect(page.get_by_label("Namespace").locator("option")).to_have_text(["all", OTHER])

    page.goto(f"{released.api}/#/releases?namespace={TEAM}")
    expect(page.get_by_role("alert")).to_contain_text("needs the role viewer")

    page.get_by_role("button", name="Forget key").click()
    page.get_by_role("button", name="Use an API key").click()
    page.get_by_label("API key", exact=True).fill(admin)
    page.get_by_role("button", name="Use key").click()
    page.goto(f"{released.api}/#/releases?namespace=quiet-team")
    expect(page.get_by_test_id("no-releases")).to_contain_text("No releases yet in quiet-team")
