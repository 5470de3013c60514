"""The evaluation gate on the embedded platform and in ``modelplane evaluate``: a labelled
dataset replayed against a real canary before any traffic; a worse model rolled back with its
numbers, never having answered a client; a good one promoted. A team's scorer, installed where
the gate runs (a module on the platform's path), judges answers; one that fails rolls back with
its own reason."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.platform.conftest import API, Platform, running_in, wait_for
from tests.processes import modelplane
from tests.traffic import gated_manifest, steady_load, write_iris_dataset

TEAM_SCORERS = """
def agrees(answer, expected):
    # The share of rows labelled as expected; a batch's answer and expected value are lists.
    answers = answer if isinstance(answer, list) else [answer]
    wanted = expected if isinstance(expected, list) else [expected]
    return sum(a == w for a, w in zip(answers, wanted)) / len(wanted)

def one_at_a_time(answer, expected):
    if isinstance(expected, list):
        raise ValueError(f"one label at a time, not {expected}")
    return float(answer == expected)
"""


@pytest.fixture(scope="module")
def scorers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment that installs the team's scorers: a module on the Python path."""
    where = tmp_path_factory.mktemp("scorers")
    (where / "team_gate.py").write_text(TEAM_SCORERS)
    paths = [str(where), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {"PYTHONPATH": os.pathsep.join(paths)}


@pytest.fixture(scope="module")
def platform(
    tmp_path_factory: pytest.TempPathFactory, scorers: dict[str, str]
) -> Iterator[Platform]:
    yield from running_in(tmp_path_factory, "gated", env=scorers)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_iris_dataset(tmp_path_factory.mktemp("eval") / "iris.jsonl")


def rollout(platform: Platform) -> dict[str, Any]:
    return dict(platform.model("gated")["status"].get("rollout") or {})


def apply(platform: Platform, tmp_path: Path, text: str) -> None:
    (tmp_path / "gated.yaml").write_text(text)
    done = platform.cli("apply", "-f", str(tmp_path / "gated.yaml"))
    assert done.returncode == 0, done.stderr


def ended(platform: Platform, canary: str, phase: str) -> None:
    def check() -> bool:
        status = platform.model("gated")["status"]
        name = status.get("stableRevision" if phase == "Promoted" else "canaryRevision")
        return name == canary and (status.get("rollout") or {}).get("phase") == phase

    try:
        wait_for(check, f"{canary} {phase}", 90)
    except AssertionError as exc:
        raise AssertionError(f"{exc}: {platform.model('gated')['status']}") from None


def test_a_canary_is_judged_on_the_dataset_before_it_takes_any_traffic(
    platform: Platform, dataset: Path, tmp_path: Path
) -> None:
    apply(platform, tmp_path, gated_manifest(0, dataset=dataset))  # 2 of 3 rows are label 0
    wait_for(lambda: platform.model("gated")["status"].get("stableRevision") == "gated-r1",
             "r1 serves", 60)  # fmt: skip
    url = f"{platform.gateway}/v2/models/gated/infer"
    with steady_load(url) as outcomes:
        apply(platform, tmp_path, gated_manifest(1, dataset=dataset))  # 1 of 3: worse
        ended(platform, "gated-r2", "RolledBack")
        judged = rollout(platform)
        assert judged["reason"] == "EvaluationFailed"
        verdict = judged["evaluation"]
        assert (verdict["passed"], verdict["examples"], verdict["threshold"]) == (False, 3, 0.6)
        assert verdict["value"] == pytest.approx(1 / 3)
        assert "under the threshold" in verdict["message"]
        # The good change passes the gate, then the steps.
        apply(
            platform,
            tmp_path,
            gated_manifest(0, dataset=dataset, extra="  batching: {maxBatchSize: 4}\n"),
        )
        ended(platform, "gated-r3", "Promoted")
    assert {key.split()[1] for key in outcomes} == {"gated-r1", "gated-r3"}  # never gated-r2
    assert rollout(platform)["evaluation"]["value"] == pytest.approx(2 / 3)
    events = httpx.get(f"{platform.api}{API}/namespaces/default/models/gated/events").json()
    reasons = [e["reason"] for e in events["items"]]
    assert "EvaluationFailed" in reasons
    assert "EvaluationPassed" in reasons
    releases = httpx.get(f"{platform.api}/apis/releases.modelplane.io/v1alpha1/releases").json()
    r2 = next(r for r in releases["items"] if r["revision"] == "gated-r2")
    assert (r2["outcome"], r2["reason"], r2["timeToRestoreSeconds"]) == (
        "RolledBack", "EvaluationFailed", None,
    )  # fmt: skip


def test_a_gate_relative_to_stable_and_a_dataset_that_cannot_be_read(
    platform: Platform, dataset: Path, tmp_path: Path
) -> None:
    apply(platform, tmp_path, gated_manifest(1, relative=True, dataset=dataset))
    ended(platform, "gated-r4", "RolledBack")
    verdict = rollout(platform)["evaluation"]
    assert verdict["stableValue"] == pytest.approx(2 / 3)
    assert "the stable revision's" in verdict["message"]
    missing = tmp_path / "nowhere.jsonl"
    apply(
        platform,
        tmp_path,
        gated_manifest(0, dataset=missing, extra="  batching: {maxBatchSize: 2}\n"),
    )
    ended(platform, "gated-r5", "RolledBack")
    verdict = rollout(platform)["evaluation"]
    assert "nowhere.jsonl" in verdict["message"]
    assert platform.infer("gated", [[5.1, 3.5, 1.4, 0.2]]).headers["x-modelplane-revision"] == (
        "gated-r3"
    )
    # Undo returns to what served before r3 (r1), never to r2, the canary its gate refused.
    undone = platform.cli("rollout", "undo", "gated")
    assert "returning to the spec of gated-r1" in undone.stdout, undone.stderr


def scored_change(
    platform: Platform, tmp_path: Path, dataset: Path, scorer: str, batch: int
) -> str:
    """The canary of a change (``batch``: a new revision) gated by ``scorer``."""
    before = platform.model("gated")["status"].get("canaryRevision")
    extra = f"  batching: {{maxBatchSize: {batch}}}\n"
    apply(platform, tmp_path, gated_manifest(0, dataset=dataset, scorer=scorer, extra=extra))
    made: list[str] = []

    def new() -> bool:
        name = platform.model("gated")["status"].get("canaryRevision")
        made[:] = [name] if name not in (None, before) else []
        return bool(made)

    wait_for(new, f"a canary gated by {scorer}", 30)
    return made[0]


def test_a_scorer_that_fails_rolls_back_with_its_own_reason_before_any_traffic(
    platform: Platform, dataset: Path, tmp_path: Path
) -> None:
    served = platform.infer("gated", [[5.1, 3.5, 1.4, 0.2]]).headers["x-modelplane-revision"]
    url = f"{platform.gateway}/v2/models/gated/infer"
    with steady_load(url) as outcomes:
        canary = scored_change(platform, tmp_path, dataset, "team_gate:one_at_a_time", 3)
        ended(platform, canary, "RolledBack")
        judged = rollout(platform)
        assert judged["reason"] == "ScorerFailed"
        why = (
            f"scorer team_gate:one_at_a_time raised on {dataset.as_uri()} line 2: ValueError: "
            "one label at a time, not [0, 1]"
        )
        assert judged["evaluation"]["message"] == why
        assert judged["message"] == f"rolled back to {served}: {why}"
        absent = scored_change(platform, tmp_path, dataset, "absent_scoring:judge", 5)
        ended(platform, absent, "RolledBack")
        assert rollout(platform)["reason"] == "ScorerFailed"
        assert rollout(platform)["evaluation"]["message"].startswith(
            "scorer absent_scoring:judge cannot be imported here (ModuleNotFoundError"
        )
    assert {key.split()[1] for key in outcomes} == {served}  # the canaries never answered
    events = httpx.get(f"{platform.api}{API}/namespaces/default/models/gated/events").json()
    assert [e["reason"] for e in events["items"]].count("ScorerFailed") == 2


def test_a_gate_that_names_its_scorer_wrongly_is_refused_at_apply(platform: Platform) -> None:
    manifest: dict[str, Any] = {
        "apiVersion": "modelplane.io/v1alpha1", "kind": "Model",
        "metadata": {"name": "misjudged", "namespace": "default"},
        "spec": {
            "source": {"uri": "file:///models/m.py"}, "format": "python", "task": "chat",
            "rollout": {"evaluation": {"dataset": "file:///eval.jsonl", "metric": "scorer",
                                       "scorer": "team gate", "threshold": 0.5}},
        },
    }  # fmt: skip
    refused = httpx.post(f"{platform.api}{API}/namespaces/default/models", json=manifest)
    assert refused.status_code == 422
    assert "spec.rollout.evaluation.scorer: 'team gate' is neither package.module:function" in (
        refused.text
    )
    gate = manifest["spec"]["rollout"]["evaluation"]
    gate.pop("scorer")
    missing = httpx.post(f"{platform.api}{API}/namespaces/default/models", json=manifest)
    assert missing.status_code == 422
    assert "metric scorer needs scorer" in missing.text
    assert platform.cli("get", "misjudged").returncode != 0  # nothing half-applied


def evaluate(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        modelplane("evaluate", *args), capture_output=True, text=True, timeout=180,
        env={**os.environ, **(env or {})},
    )  # fmt: skip


def test_modelplane_evaluate_runs_the_same_gate_here(dataset: Path, tmp_path: Path) -> None:
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text(gated_manifest(0, dataset=dataset))
    bad.write_text(gated_manifest(1, dataset=dataset))
    passed = evaluate("-f", str(good))
    assert passed.returncode == 0, passed.stderr
    assert passed.stdout.startswith("passed: accuracy 0.6667 over 3 examples")
    failed = evaluate("-f", str(bad), "-o", "json")
    assert failed.returncode == 1
    assert json.loads(failed.stdout)["value"] == pytest.approx(1 / 3)
    relative = tmp_path / "relative.yaml"
    relative.write_text(gated_manifest(1, relative=True, dataset=dataset))
    assert "give --baseline" in evaluate("-f", str(relative)).stderr
    against = evaluate("-f", str(relative), "--baseline", str(good))
    assert against.returncode == 1
    assert "the stable revision's 0.6667" in against.stdout
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"inputs": []}\n')
    refused = evaluate("-f", str(good), "--dataset", str(broken))
    assert refused.returncode != 0
    assert 'line 1: an example is an object with "inputs" and "expected"' in refused.stderr


def test_modelplane_evaluate_with_a_scorer_installed_here(
    dataset: Path, tmp_path: Path, scorers: dict[str, str]
) -> None:
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text(gated_manifest(0, dataset=dataset, scorer="team_gate:agrees"))
    bad.write_text(gated_manifest(1, dataset=dataset))  # an accuracy gate, the scorer given here
    passed = evaluate("-f", str(good), env=scorers)
    assert passed.returncode == 0, passed.stderr
    assert passed.stdout.startswith("passed: scorer team_gate:agrees 0.75 over 2 examples")
    failed = evaluate("-f", str(bad), "--scorer", "team_gate:agrees", env=scorers)
    assert failed.returncode == 1, failed.stderr
    assert failed.stdout.startswith("FAILED: scorer team_gate:agrees 0.25 over 2 examples")
    raising = evaluate("-f", str(good), "--scorer", "team_gate:one_at_a_time", "-o", "json",
                       env=scorers)  # fmt: skip
    assert raising.returncode == 3, raising.stderr
    assert json.loads(raising.stdout)["reason"] == "ScorerFailed"
    assert "raised on" in json.loads(raising.stdout)["message"]
    # Not installed where this runs (the team's module is not on this path): refused at once.
    absent = evaluate("-f", str(good))
    assert absent.returncode == 3
    assert absent.stdout.startswith(
        "FAILED: scorer team_gate:agrees cannot be imported here (ModuleNotFoundError"
    )
    mixed = evaluate("-f", str(good), "--metric", "accuracy", "--scorer", "team_gate:agrees")
    assert mixed.returncode == 2
    assert "scorer 'team_gate:agrees' is given with metric accuracy" in mixed.stderr
