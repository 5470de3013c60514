"""A team lead's day in the portal: see what runs, ship a version through a canary, promote,
abort, undo, try a model, apply a new one, and sign in when the platform wants a key."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
from playwright.sync_api import Page, expect

from tests.platform.conftest import API, Platform, manifest, wait_for
from tests.traffic import steady_load

SLOW_CANARY = (
    "{strategy: Canary, steps: [{weight: 20, pauseSeconds: 600}],"
    " analysis: {minRequests: 5, maxLatencyP99Ms: 5000}}"
)
LONG = 60_000  # ms: replicas start, rollouts move


def apply(platform: Platform, path: Path) -> None:
    result = platform.cli("apply", "-f", str(path))
    assert result.returncode == 0, result.stderr


def stable(platform: Platform, name: str) -> str | None:
    found: str | None = platform.model(name)["status"].get("stableRevision")
    return found


def test_models_page_shows_every_model_with_health_traffic_and_load(
    portal: Platform, page: Page, shots: Path, tmp_path: Path, iris: Path
) -> None:
    apply(portal, manifest(tmp_path / "iris.yaml", "iris", iris))
    other = manifest(tmp_path / "b.yaml", "fraud", iris)
    other.write_text(other.read_text().replace("name: fraud", "name: fraud\n  namespace: team-b"))
    apply(portal, other)
    portal.wait_condition("iris", "Ready", "True")
    with steady_load(f"{portal.gateway}/v2/models/iris/infer", clients=1) as outcomes:
        wait_for(lambda: sum(outcomes.values()) > 50, "traffic", 30)
        page.goto(portal.api + "/")
        iris = page.locator("tr[data-model='default/iris']")
        expect(iris).to_contain_text("Ready", timeout=LONG)
        expect(iris).to_contain_text("iris-r1 100%")
        expect(iris).to_contain_text(f"{portal.gateway}/v2/models/iris")
        # requests/s from the platform's own metrics: a number above zero within a few samples
        rate = iris.locator("td.num").first
        expect(rate).to_have_text(re.compile(r"^(0\.\d*[1-9]|[1-9])[\d.e+]*$"), timeout=20_000)
        page.screenshot(path=shots / "models.png")
    expect(page.locator("tr[data-model='team-b/fraud']")).to_be_visible()

    page.get_by_label("Search").fill("fraud")
    expect(page.locator("tbody tr")).to_have_count(1)
    page.get_by_label("Search").fill("")
    page.get_by_label("Namespace").select_option("default")
    expect(page.locator("tr[data-model='team-b/fraud']")).to_have_count(0)
    expect(iris).to_be_visible()

    iris.get_by_role("link", name="default/iris").click()
    expect(page.get_by_role("heading", name="default/iris")).to_be_visible()
    expect(page.locator("table.conditions")).to_contain_text("RevisionReady")


def test_a_new_version_ships_through_a_canary_and_is_promoted_from_the_page(
    portal: Platform, page: Page, shots: Path, tmp_path: Path, iris: Path
) -> None:
    apply(portal, manifest(tmp_path / "m.yaml", "churn", iris, rollout=SLOW_CANARY))
    portal.wait_condition("churn", "Ready", "True", "RevisionReady")
    page.goto(f"{portal.api}/#/models/default/churn")
    expect(page.get_by_test_id("rollout-phase")).to_have_text("no rollout yet", timeout=LONG)

    page.get_by_role("button", name="Edit YAML…").click()
    yaml = page.get_by_label("Manifest (YAML)")
    yaml.fill(yaml.input_value() + "\n  batching:\n    maxBatchSize: 4\n    maxDelayMs: 3\n")
    page.get_by_role("button", name="Preview edit").click()
    preview = page.locator(".preview")
    expect(preview).to_contain_text("Makes a new revision, rolled out by canary: 20% → 100%")
    expect(preview.locator(".diff .add")).to_contain_text(["maxBatchSize: 4"])
    assert portal.model("churn")["metadata"]["generation"] == 1  # a preview stores nothing
    page.get_by_role("button", name="Apply edit").click()

    with steady_load(f"{portal.gateway}/v2/models/churn/infer", clients=1):
        phase = page.get_by_test_id("rollout-phase")
        expect(phase).to_have_text("Progressing (step 1 of 1)", timeout=LONG)
        expect(page.locator(".traffic")).to_contain_text("churn-r2 20%", timeout=LONG)
        analysis = page.locator("table.analysis")
        expect(analysis).to_be_visible(timeout=LONG)
        expect(analysis.locator("tr", has_text="latencyP99Ms").first).to_contain_text("5000")
        # the charts, live: requests/s, latency, errors and replicas for each revision
        charts = page.locator("section[aria-labelledby='charts-title'] figure.chart")
        expect(charts).to_have_count(4, timeout=LONG)
        expect(charts.first.locator(".u-legend")).to_contain_text("churn-r2", timeout=LONG)
        page.screenshot(path=shots / "rollout.png", full_page=True)

        page.get_by_role("button", name="Promote…").click()
        dialog = page.get_by_role("dialog", name="Promote the rollout")
        expect(dialog).to_contain_text("churn-r2 takes all traffic now and becomes stable")
        assert stable(portal, "churn") == "churn-r1"  # asking is not doing
        dialog.get_by_role("button", name="Confirm promote").click()
        expect(phase).to_have_text("Promoted", timeout=LONG)
    assert stable(portal, "churn") == "churn-r2"
    expect(page.locator(".traffic")).to_contain_text("churn-r2 100%", timeout=LONG)
    events = page.locator("table.events")
    expect(events).to_contain_text("RolloutPromoted", timeout=LONG)

    # Undo: back to r1's spec, shown first, then through the same rollout path as any change.
    page.get_by_role("button", name="Undo to churn-r1…").click()
    page.get_by_role("button", name="Preview undo to churn-r1").click()
    preview = page.locator(".preview")
    expect(preview.locator(".diff .del")).to_contain_text(["maxBatchSize: 4"])
    page.get_by_role("button", name="Apply undo to churn-r1").click()
    wait_for(lambda: portal.model("churn")["status"].get("canaryRevision") == "churn-r3",
             "the undo's canary", 60)  # fmt: skip
    revisions = httpx.get(f"{portal.api}{API}/namespaces/default/models/churn/revisions").json()
    digests = {r["name"]: r["digest"] for r in revisions["items"]}
    assert digests["churn-r3"] == digests["churn-r1"]


def test_a_canary_is_aborted_and_a_change_undone_from_the_page(
    portal: Platform, page: Page, shots: Path, tmp_path: Path, iris: Path
) -> None:
    apply(portal, manifest(tmp_path / "m.yaml", "ranker", iris, rollout=SLOW_CANARY))
    portal.wait_condition("ranker", "Ready", "True", "RevisionReady")
    changed = manifest(tmp_path / "m.yaml", "ranker", iris, rollout=SLOW_CANARY,
                       extra="  batching: {maxBatchSize: 8}\n")  # fmt: skip
    apply(portal, changed)
    wait_for(lambda: portal.model("ranker")["status"].get("canaryRevision") == "ranker-r2",
             "canary", 60)  # fmt: skip
    page.goto(f"{portal.api}/#/models/default/ranker")
    page.get_by_role("button", name="Abort…").click()
    dialog = page.get_by_role("dialog", name="Abort the rollout")
    expect(dialog).to_contain_text("All traffic returns to ranker-r1; ranker-r2 is rolled back")
    dialog.get_by_role("button", name="Confirm abort").click()
    expect(page.get_by_test_id("rollout-phase")).to_have_text("RolledBack", timeout=LONG)
    assert stable(portal, "ranker") == "ranker-r1"

    # Revisions: what changed between r1 and r2, as a spec diff.
    revisions = page.locator("section[aria-labelledby='revisions-title']")
    expect(revisions.locator(".diff .add")).to_contain_text(["maxBatchSize: 8"])

    # A new version by its source: the preview names the new revision, nothing moves until Apply.
    page.get_by_role("button", name="New version…").click()
    uri = page.get_by_label("Artifact URI")
    uri.fill(uri.input_value() + "?v=2")
    page.get_by_role("button", name="Preview new version").click()
    preview = page.locator(".preview")
    expect(preview).to_contain_text("Makes a new revision")
    expect(preview.locator(".diff .add")).to_contain_text(["model.onnx?v=2"])
    page.get_by_role("button", name="Cancel").click()
    assert "?v=2" not in portal.model("ranker")["spec"]["source"]["uri"]
    page.screenshot(path=shots / "model.png", full_page=True)


def test_try_it_sends_an_inference_and_shows_the_answer_and_its_trace_id(
    portal: Platform, page: Page, shots: Path, tmp_path: Path, iris: Path
) -> None:
    apply(portal, manifest(tmp_path / "m.yaml", "tryit", iris))
    portal.wait_condition("tryit", "Ready", "True")
    page.goto(f"{portal.api}/#/models/default/tryit")
    body = page.get_by_label("Request body (JSON)")
    expect(body).to_have_value(re.compile(r'"name":\s*"X"'), timeout=LONG)  # from the metadata
    body.fill('{"inputs": [{"name": "X", "shape": [1, 4], "datatype": "FP32",'
              ' "data": [6.9, 3.1, 5.4, 2.1]}]}')  # fmt: skip
    page.get_by_role("button", name="Send").click()
    answer = page.get_by_test_id("try-response")
    expect(answer).to_contain_text('"model_name": "tryit"')
    expect(answer).to_contain_text("outputs")
    trace_id = page.get_by_test_id("trace-id").inner_text()
    assert re.fullmatch(r"[0-9a-f]{32}", trace_id)
    page.locator("section[aria-labelledby='try-title']").screenshot(path=shots / "try-it.png")


def test_apply_page_shows_a_bad_manifest_s_errors_and_creates_a_good_one(
    portal: Platform, page: Page, shots: Path, iris: Path
) -> None:
    page.goto(f"{portal.api}/#/apply")
    text = page.get_by_label(re.compile("^Manifest"))
    good = (
        text.input_value()
        .replace("my-model", "fresh")
        .replace("file://examples/iris/model.onnx", iris.as_uri())
    )
    text.fill(good + "  batching: {maxBatchSize: 0}\n")
    page.get_by_role("button", name="Read the manifest").click()
    page.get_by_role("button", name="Preview default/fresh").click()
    error = page.get_by_role("alert")
    expect(error).to_contain_text("spec.batching.maxBatchSize")
    assert httpx.get(f"{portal.api}{API}/namespaces/default/models/fresh").status_code == 404

    text.fill("kind: Model\nmetadata: {name: [unclosed\n")
    page.get_by_role("button", name="Read the manifest").click()
    expect(page.get_by_role("alert")).to_contain_text("not valid YAML")

    text.fill(good)
    page.get_by_role("button", name="Read the manifest").click()
    page.get_by_role("button", name="Preview default/fresh").click()
    expect(page.locator(".preview")).to_contain_text("Creates default/fresh")
    page.screenshot(path=shots / "apply.png", full_page=True)
    page.get_by_role("button", name="Apply default/fresh").click()
    expect(page.get_by_role("heading", name="default/fresh")).to_be_visible()
    expect(page.locator(".badge").first).to_have_text("Ready", timeout=LONG)


def test_with_auth_the_portal_asks_for_a_key_and_shows_only_what_it_may_read(
    page: Page, tmp_path: Path, iris: Path
) -> None:
    guarded = Platform(tmp_path / "state", tmp_path / "up.log", options=("--auth",))
    try:
        admin = (tmp_path / "state" / "admin.key").read_text().strip()
        for namespace in ("team-a", "team-b"):
            path = manifest(tmp_path / f"{namespace}.yaml", "scorer", iris)
            path.write_text(path.read_text().replace(
                "name: scorer", f"name: scorer\n  namespace: {namespace}"))  # fmt: skip
            assert guarded.cli("apply", "-f", str(path), key=admin).returncode == 0
        made = guarded.cli("auth", "keys", "create", "team-a", "--grant", "team-a=viewer",
                           key=admin)  # fmt: skip
        team_a = re.search(r"mpk_\S+", made.stdout)
        assert team_a, made.stdout

        page.goto(guarded.api + "/")
        expect(page.get_by_role("alert").filter(has_text="needs an API key")).to_be_visible()
        assert page.locator("tr[data-model]").count() == 0
        page.get_by_label("API key", exact=True).fill(team_a.group(0))
        page.get_by_role("button", name="Use key").click()
        expect(page.locator("tr[data-model='team-a/scorer']")).to_be_visible()
        expect(page.locator("tr[data-model='team-b/scorer']")).to_have_count(0)

        page.get_by_role("button", name="Forget key").click()
        page.get_by_role("button", name="Use an API key").click()
        page.get_by_label("API key", exact=True).fill(admin)
        page.get_by_role("button", name="Use key").click()
        expect(page.locator("tr[data-model='team-b/scorer']")).to_be_visible()
    finally:
        guarded.stop()
