"""Each team's usage on a real ``modelplane up --auth``: two teams' Models (python ones and the
tiny llama.cpp chat model) run and answer requests, and the usage API, ``modelplane usage`` and
the platform's /metrics tell each team's replica time (weighted by what its replicas request),
requests and tokens; a viewer of one team reads no other's; prices give a cost; and what was
recorded survives a restart."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.llm.conftest import written_by
from tests.platform.conftest import Platform, as_json, running_in, wait_for
from tests.security.conftest import admin_key
from tests.traffic import BODY, flaky_manifest

USAGE = "/apis/usage.modelplane.io/v1alpha1"
API = "/apis/modelplane.io/v1alpha1"
SMALL = "  rollout: {strategy: Immediate}\n  resources: {cpu: 500m, memory: 256Mi}\n"
BIG = "  rollout: {strategy: Immediate}\n  resources: {cpu: '2', memory: 1Gi, accelerators: 1}\n"
HELLO = [{"role": "user", "content": "What is the weather like?"}]


@dataclass(frozen=True)
class Sent:
    """What the test sent and what the answers said they used."""

    admin: str
    viewer: str  # of team-a
    prompt_tokens: int
    completion_tokens: int


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    yield from running_in(tmp_path_factory, "usage", options=("--auth",))


@pytest.fixture(scope="module")
def sent(platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> Sent:
    """team-a: a small python Model and the chat model; team-b: a big python Model (one
    accelerator); requests to each, some refused by the replica (4xx), chats whole and streamed."""
    admin = admin_key(platform)
    work = tmp_path_factory.mktemp("usage-manifests")
    chat = written_by("make_models.py", work) / "chat.yaml"
    chat.write_text(chat.read_text().replace("name: tiny-chat", "name: chat\n  namespace: team-a"))
    (work / "a.yaml").write_text(flaky_manifest("scorer", False, SMALL, namespace="team-a"))
    (work / "b.yaml").write_text(flaky_manifest("scorer", False, BIG, namespace="team-b"))
    for path in (chat, work / "a.yaml", work / "b.yaml"):
        applied = platform.cli("apply", "-f", str(path), key=admin)
        assert applied.returncode == 0, applied.stderr
    for namespace, name in (("team-a", "scorer"), ("team-b", "scorer"), ("team-a", "chat")):
        wait_for(lambda n=namespace, m=name: _ready(platform, admin, n, m), f"{namespace}/{name}",
                 90)  # fmt: skip
    made = platform.cli("auth", "keys", "create", "a-dashboards", "--grant=team-a=viewer",
                        key=admin)  # fmt: skip
    assert made.returncode == 0, made.stderr
    with httpx.Client(headers=_bearer(admin), timeout=30) as client:
        for _ in range(5):
            _infer(client, platform, "team-a", BODY, 200)
        bad = {"inputs": [{"name": "X", "datatype": "FP32", "shape": [1, 3], "data": [1, 2, 3]}]}
        for _ in range(2):
            _infer(client, platform, "team-a", bad, 400)
        for _ in range(3):
            _infer(client, platform, "team-b", BODY, 200)
        prompt, completion = _chat(client, platform)
    return Sent(admin, made.stdout.strip(), prompt, completion)


def _ready(platform: Platform, key: str, namespace: str, name: str) -> bool:
    reply = httpx.get(f"{platform.api}{API}/namespaces/{namespace}/models/{name}",
                      headers=_bearer(key), timeout=5)  # fmt: skip
    conditions = reply.json().get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _infer(client: httpx.Client, platform: Platform, team: str, body: Any, status: int) -> None:
    reply = client.post(f"{platform.gateway}/v2/models/{team}/scorer/infer", json=body)
    assert reply.status_code == status, reply.text
    assert reply.headers["x-modelplane-revision"] == "scorer-r1"  # a replica answered


def _chat(client: httpx.Client, platform: Platform) -> tuple[int, int]:
    """A whole chat and a streamed one: the tokens their answers say they used."""
    url = f"{platform.gateway}/v1/chat/completions"
    ask = {"model": "team-a/chat", "messages": HELLO, "max_tokens": 8}
    whole = client.post(url, json=ask).json()["usage"]
    streamed = {**ask, "stream": True, "stream_options": {"include_usage": True}}
    with client.stream("POST", url, json=streamed) as reply:
        events = [line.removeprefix("data: ") for line in reply.iter_lines()
                  if line.startswith("data: {")]  # fmt: skip
    last = json.loads(events[-1])["usage"]
    return (whole["prompt_tokens"] + last["prompt_tokens"],
            whole["completion_tokens"] + last["completion_tokens"])  # fmt: skip


def report(platform: Platform, key: str, where: str = "", query: str = "") -> dict[str, Any]:
    reply = httpx.get(f"{platform.api}{USAGE}{where}/usage{query}", headers=_bearer(key))
    assert reply.status_code == 200, reply.text
    return dict(reply.json())


def models(found: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each Model's summary, by namespace/name."""
    return {f"{t['namespace']}/{m['name']}": m["summary"] for t in found["teams"]
            for m in t["models"]}  # fmt: skip


def test_usage_accrues_per_team_and_model_while_replicas_run_and_requests_flow(
    platform: Platform, sent: Sent
) -> None:
    found = models(report(platform, sent.admin))
    scorer_a, scorer_b, chat = found["team-a/scorer"], found["team-b/scorer"], found["team-a/chat"]
    assert (scorer_a["requests"], scorer_a["clientErrors"], scorer_a["serverErrors"]) == (7, 2, 0)
    assert (scorer_b["requests"], chat["requests"]) == (3, 2)
    assert (chat["promptTokens"], chat["completionTokens"]) == (
        sent.prompt_tokens, sent.completion_tokens)  # fmt: skip
    assert scorer_a["promptTokens"] == scorer_b["completionTokens"] == 0  # v2: no tokens
    # Weighted by what each replica requests: 500m and 256Mi; 2 cores, 1Gi and an accelerator.
    held = scorer_a["replicaSeconds"]
    assert held > 0
    assert scorer_a["cpuCoreSeconds"] == pytest.approx(held * 0.5, abs=0.01)
    assert scorer_a["memoryGiBSeconds"] == pytest.approx(held * 0.25, abs=0.01)
    assert scorer_a["acceleratorSeconds"] == 0
    held = scorer_b["replicaSeconds"]
    assert scorer_b["cpuCoreSeconds"] == pytest.approx(held * 2, abs=0.01)
    assert scorer_b["acceleratorSeconds"] == pytest.approx(held, abs=0.01)
    assert chat["memoryGiBSeconds"] == pytest.approx(chat["replicaSeconds"] * 0.5, abs=0.01)

    # Replica time goes on while the replica runs (no request needed).
    before, started = scorer_b["replicaSeconds"], time.monotonic()
    time.sleep(1.5)
    later = models(report(platform, sent.admin, "/namespaces/team-b"))
    assert list(later) == ["team-b/scorer"]
    assert later["team-b/scorer"]["replicaSeconds"] - before >= time.monotonic() - started - 0.2

    one = report(platform, sent.admin, "/namespaces/team-a", "?since=1d&step=1h")
    assert one["stepSeconds"] == 3600
    assert sum(b["requests"] for b in one["teams"][0]["trend"]) == 9
    assert one["summary"]["requests"] == 9

    scraped = _usage_series(platform)
    tokens = ("modelplane_usage_tokens_total", "team-a", "chat", "chat-r1")
    assert scraped[(*tokens, "prompt")] == sent.prompt_tokens
    assert scraped[(*tokens, "completion")] == sent.completion_tokens
    answered = {k[-1]: v for k, v in scraped.items()
                if k[:3] == ("modelplane_usage_requests_total", "team-a", "scorer")}  # fmt: skip
    summary = models(one)["team-a/scorer"]
    errors = {"client_error": summary["clientErrors"], "server_error": summary["serverErrors"]}
    assert answered == {"ok": summary["requests"] - sum(errors.values()), **errors}
    replica = ("modelplane_usage_replica_seconds_total", "team-b", "scorer", "scorer-r1", "")
    accelerator = (
        "modelplane_usage_accelerator_seconds_total",
        "team-b",
        "scorer",
        "scorer-r1",
        "",
    )
    assert scraped[replica] >= later["team-b/scorer"]["replicaSeconds"]
    assert scraped[accelerator] == pytest.approx(scraped[replica], abs=0.01)


def _usage_series(platform: Platform) -> dict[tuple[str, ...], float]:
    """The usage series of the platform's /metrics: (name, namespace, model, revision, kind or
    class)."""
    text = httpx.get(f"{platform.gateway}/metrics").text
    return {
        (s.name, s.labels["namespace"], s.labels["model"], s.labels["revision"],
         s.labels.get("kind", s.labels.get("class", ""))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples if s.name.startswith("modelplane_usage_")
    }  # fmt: skip


def test_a_viewer_of_one_team_reads_its_usage_and_no_other_s(
    platform: Platform, sent: Sent
) -> None:
    own = report(platform, sent.viewer, "/namespaces/team-a")
    assert [t["namespace"] for t in own["teams"]] == ["team-a"]
    other = httpx.get(f"{platform.api}{USAGE}/namespaces/team-b/usage",
                      headers=_bearer(sent.viewer))  # fmt: skip
    assert other.status_code == 403
    assert "viewer" in other.json()["message"]
    every = report(platform, sent.viewer)  # across namespaces: what the key may read
    assert [t["namespace"] for t in every["teams"]] == ["team-a"]
    counts = ("requests", "promptTokens", "completionTokens")  # replica time moves on
    assert [every["summary"][c] for c in counts] == [own["summary"][c] for c in counts]
    shown = platform.cli("usage", "-A", key=sent.viewer)
    assert shown.returncode == 0, shown.stderr
    assert "team-a" in shown.stdout
    assert "team-b" not in shown.stdout
    assert platform.cli("usage", "-n", "team-b", key=sent.viewer).returncode != 0


def test_prices_give_a_cost_and_a_bad_prices_file_is_refused_naming_the_field(
    platform: Platform, sent: Sent, tmp_path: Path
) -> None:
    prices = tmp_path / "prices.yaml"
    prices.write_text(
        "cpuCoreHour: 0.04\nmemoryGiBHour: 0.005\nacceleratorHour: 2.5\n"
        "perMillionPromptTokens: 500\nperMillionCompletionTokens: 1500\ncurrency: EUR\n"
    )
    priced = as_json(
        platform.cli("usage", "-A", "--prices", str(prices), "-o", "json", key=sent.admin)
    )
    for team in priced["teams"]:
        for part in (team, *team["models"]):
            used = part["summary"]
            expected = (used["cpuCoreSeconds"] * 0.04 + used["memoryGiBSeconds"] * 0.005
                        + used["acceleratorSeconds"] * 2.5) / 3600 + (
                used["promptTokens"] * 500 + used["completionTokens"] * 1500) / 1e6  # fmt: skip
            assert used["cost"] == pytest.approx(expected)
    costs = {t["namespace"]: t["summary"]["cost"] for t in priced["teams"]}
    assert all(cost > 0 for cost in costs.values())
    assert priced["summary"]["cost"] == pytest.approx(sum(costs.values()))
    assert priced["prices"]["currency"] == "EUR"
    table = platform.cli("usage", "-n", "team-a", "--prices", str(prices), "-o", "wide",
                         key=sent.admin)  # fmt: skip
    assert table.returncode == 0, table.stderr
    assert "COST (EUR)" in table.stdout
    assert "scorer-r1" in table.stdout  # wide: each revision

    for text, named in [("cpuCoreHour: cheap\n", "cpuCoreHour"),
                        ("acceleratorHour: -1\n", "acceleratorHour"),
                        ("gpuHour: 3\n", "gpuHour"),
                        ("cpuCoreHour: [1\n", "cannot be read")]:  # fmt: skip
        prices.write_text(text)
        refused = platform.cli("usage", "--prices", str(prices), key=sent.admin)
        assert refused.returncode == 2, refused.stderr
        assert named in refused.stderr
        assert "Traceback" not in refused.stderr
    bad_period = httpx.get(f"{platform.api}{USAGE}/usage?since=a+month",
                           headers=_bearer(sent.admin))  # fmt: skip
    assert bad_period.status_code == 400
    assert "30d" in bad_period.json()["message"]


def test_what_was_recorded_survives_a_restart(platform: Platform, sent: Sent) -> None:
    before = models(report(platform, sent.admin))
    platform.stop()
    platform.start()
    after = models(report(platform, sent.admin))
    for key, used in before.items():
        kept = after[key]
        counts = ("requests", "clientErrors", "promptTokens", "completionTokens")
        assert [kept[c] for c in counts] == [used[c] for c in counts]
        assert kept["replicaSeconds"] >= used["replicaSeconds"]
