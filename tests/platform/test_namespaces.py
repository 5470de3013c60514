"""Models of one name in two namespaces are two Models: each answers from its own replicas with
its own spec, deleting one leaves the other serving, and one namespace's logs never show the
other's replicas. A Model deleted and made again serves what it is made with now."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.platform.conftest import Platform, running_in, wait_for
from tests.traffic import BODY, flaky_manifest, steady_load

NAME = "iris"
IMMEDIATE = "  rollout: {strategy: Immediate}\n"
BROKEN = "this release is broken"  # what the flaky model answers when it fails


@pytest.fixture(scope="module")
def scrape_targets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("scraping") / "targets.json"


@pytest.fixture(scope="module")
def teams(tmp_path_factory: pytest.TempPathFactory, scrape_targets: Path) -> Iterator[Platform]:
    """team-a's iris fails every request, team-b's iris answers every one."""
    options = ("--scrape-targets", str(scrape_targets))
    for running in running_in(tmp_path_factory, "teams", options=options):
        _apply(running, flaky_manifest(NAME, True, IMMEDIATE, "team-a"),
               flaky_manifest(NAME, False, IMMEDIATE, "team-b"))  # fmt: skip
        for namespace in ("team-a", "team-b"):
            running.wait_condition(NAME, "Ready", "True", namespace=namespace, timeout=90)
        yield running


def _apply(platform: Platform, *documents: str) -> None:
    path = platform.state_dir.parent / "models.yaml"
    path.write_text("---\n".join(documents))
    applied = platform.cli("apply", "-f", str(path))
    assert applied.returncode == 0, applied.stderr


def _infer(platform: Platform, namespace: str, name: str = NAME) -> httpx.Response:
    url = f"{platform.gateway}/v2/models/{namespace}/{name}/infer"
    return httpx.post(url, json=BODY, timeout=30)


def _replicas_in(logs: str) -> set[str]:
    return set(re.findall(r"^\[([^\]]+)\]", logs, re.MULTILINE))


def test_each_namespace_answers_with_its_own_model(teams: Platform) -> None:
    failing = [_infer(teams, "team-a") for _ in range(20)]
    healthy = [_infer(teams, "team-b") for _ in range(20)]
    assert [r.status_code for r in healthy] == [200] * 20
    assert [r.status_code >= 500 and BROKEN in r.text for r in failing] == [True] * 20
    assert {r.headers.get("x-modelplane-revision") for r in failing + healthy} == {"iris-r1"}
    assert len(teams.replica_pids("iris-r1", "team-a")) == 1
    assert len(teams.replica_pids("iris-r1", "team-b")) == 1


def test_the_logs_of_a_namespace_show_only_its_own_replicas(teams: Platform) -> None:
    assert _infer(teams, "team-a").status_code >= 500
    assert _infer(teams, "team-b").status_code == 200

    def logs(namespace: str) -> str:
        shown = teams.cli("logs", "model", NAME, "-n", namespace, "--revision", "iris-r1")
        assert shown.returncode == 0, shown.stderr
        return shown.stdout

    for namespace in ("team-a", "team-b"):  # each replica's access line names its model
        wait_for(lambda n=namespace: f"model={n}/{NAME}" in logs(n), f"{namespace}'s access", 30)
    a, b = logs("team-a"), logs("team-b")
    assert ("team-b" in a, "team-a" in b) == (False, False)
    assert ("status=200" in a, "status=500" in b) == (False, False)
    assert len(_replicas_in(a)) == len(_replicas_in(b)) == 1
    assert _replicas_in(a) != _replicas_in(b)


def test_prometheus_finds_each_replica_under_its_own_namespace(
    teams: Platform, scrape_targets: Path
) -> None:
    groups = json.loads(scrape_targets.read_text())
    runtimes = [g for g in groups if g["labels"]["job"] == "modelplane-runtime"]
    labels = sorted((g["labels"]["namespace"], g["labels"]["revision"]) for g in runtimes)
    assert labels == [("team-a", "iris-r1"), ("team-b", "iris-r1")]
    assert len({tuple(g["targets"]) for g in runtimes}) == 2


def test_deleting_a_model_leaves_its_namesake_serving(teams: Platform) -> None:
    kept = teams.replica_pids("iris-r1", "team-b")
    with steady_load(f"{teams.gateway}/v2/models/team-b/{NAME}/infer", clients=2) as outcomes:
        deleted = teams.cli("delete", "model", NAME, "-n", "team-a")
        assert deleted.returncode == 0, deleted.stderr
        wait_for(lambda: not teams.replica_pids("iris-r1", "team-a"), "team-a's replica gone", 60)
        wait_for(lambda: outcomes.total() > 20, "team-b answering meanwhile", 30)
    assert set(outcomes) == {"200 iris-r1"}
    assert teams.replica_pids("iris-r1", "team-b") == kept
    assert _infer(teams, "team-a").status_code == 404


def test_a_model_made_again_serves_its_new_spec(teams: Platform) -> None:
    _apply(teams, flaky_manifest("phoenix", False, IMMEDIATE))
    teams.wait_condition("phoenix", "Ready", "True", timeout=90)
    assert _infer(teams, "default", "phoenix").status_code == 200
    deleted = teams.cli("delete", "model", "phoenix")
    assert deleted.returncode == 0, deleted.stderr
    wait_for(
        lambda: not teams.replica_pids("phoenix-r1", "default"),
        "the first phoenix's replica gone",
        60,
    )

    _apply(teams, flaky_manifest("phoenix", True, IMMEDIATE))
    teams.wait_condition("phoenix", "Ready", "True", timeout=90)
    replies = [_infer(teams, "default", "phoenix") for _ in range(10)]
    assert [r.status_code >= 500 and BROKEN in r.text for r in replies] == [True] * 10
    assert {r.headers.get("x-modelplane-revision") for r in replies} == {"phoenix-r1"}


def test_a_model_made_again_at_once_serves_its_new_spec(teams: Platform, tmp_path: Path) -> None:
    """Deleted and made again before the controller saw it gone: the first one's replicas are
    not taken for the second one's."""
    _apply(teams, flaky_manifest("lazarus", True, IMMEDIATE))
    teams.wait_condition("lazarus", "Ready", "True", timeout=90)
    first = teams.replica_pids("lazarus-r1", "default")
    path = tmp_path / "lazarus.yaml"
    path.write_text(flaky_manifest("lazarus", False, IMMEDIATE))
    done = [teams.cli("delete", "model", "lazarus"), teams.cli("apply", "-f", str(path))]
    assert [d.returncode for d in done] == [0, 0], [d.stderr for d in done]
    wait_for(
        lambda: _infer(teams, "default", "lazarus").status_code == 200, "the second answering", 90
    )
    assert not set(first) & set(teams.replica_pids("lazarus-r1", "default"))
    replies = [_infer(teams, "default", "lazarus") for _ in range(10)]
    assert [r.status_code for r in replies] == [200] * 10
