"""`modelplane up --git`: a model shipped by commit, a bad commit refused with the file, field
and reason while the last good commit keeps serving, a fix applied, a webhook syncing at once,
and a restart that does not apply anything twice."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.gitops.test_sync import _git, commit
from tests.platform.conftest import API, Platform, wait_for
from tests.platform.test_rollouts import events

MODEL = """\
apiVersion: modelplane.io/v1alpha1
kind: Model
metadata: {{name: shipped}}
spec:
  source: {{uri: '{uri}'}}
  format: onnx
  task: classification
  rollout: {{strategy: Immediate}}
{extra}"""


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("gitops") / "models"
    path.mkdir()
    _git(path, "init", "-q", "-b", "main")
    return path


@pytest.fixture(scope="module")
def synced(repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    root = tmp_path_factory.mktemp("synced")
    options = (
        "--git", repo.as_uri(), "--git-path", "models", "--git-interval", "600",
        "--git-self-heal",
    )  # fmt: skip
    running = Platform(root / "state", root / "up.log", options=options)
    yield running
    running.stop()


def _status(platform: Platform) -> dict[str, Any]:
    (item,) = httpx.get(f"{platform.api}/gitops", timeout=5).json()["items"]
    found: dict[str, Any] = item
    return found


def _edit_by_hand(platform: Platform, work: Path, batch: int) -> None:
    """What someone does outside git: apply the live Model with another batch size."""
    live = platform.model("shipped")
    live["spec"]["batching"]["maxBatchSize"] = batch
    path = work / "by-hand.json"
    meta = {k: live["metadata"][k] for k in ("name", "namespace", "labels")}  # a file, no version
    path.write_text(
        json.dumps({**{k: live[k] for k in ("apiVersion", "kind", "spec")}, "metadata": meta})
    )
    assert platform.cli("apply", "-f", str(path)).returncode == 0
    assert platform.model("shipped")["spec"]["batching"]["maxBatchSize"] == batch


def _sync_now(platform: Platform) -> None:
    assert httpx.post(f"{platform.api}/gitops/webhook", timeout=5).status_code == 202


def test_commit_ship_refuse_fix_through_the_webhook(
    synced: Platform, repo: Path, iris_dir: Path
) -> None:
    uri = (iris_dir / "model.onnx").as_uri()
    first = commit(repo, {"models/shipped.yaml": MODEL.format(uri=uri, extra="")}, "ship")
    _sync_now(synced)  # the interval is 10 minutes: only the webhook can make this quick
    wait_for(lambda: _status(synced)["lastAppliedCommit"] == first, "the first commit applied", 30)
    synced.wait_condition("shipped", "Ready", "True", "RevisionReady")
    assert synced.infer("shipped", [[5.1, 3.5, 1.4, 0.2]]).status_code == 200
    labels = synced.model("shipped")["metadata"]["labels"]
    assert labels["modelplane.io/gitops-source"] == "git"
    assert _status(synced)["managed"] == ["default/shipped"]

    bad = MODEL.format(uri=uri, extra="  scaling: {minReplicas: 5, maxReplicas: 2}\n")
    second = commit(repo, {"models/shipped.yaml": bad, "models/extra.yaml": "kind: Nope\n"}, "bad")
    _sync_now(synced)
    wait_for(lambda: _status(synced)["lastAttemptedCommit"] == second, "the bad commit tried", 30)
    status = _status(synced)
    assert status["result"] == "Failed"
    assert status["lastAppliedCommit"] == first  # the last good commit keeps serving
    assert "models/shipped.yaml" in status["message"]
    assert "minReplicas (5) must not exceed maxReplicas (2)" in status["message"]
    assert "models/extra.yaml" in status["message"]
    assert synced.model("shipped")["spec"]["scaling"]["minReplicas"] == 1  # nothing applied
    assert synced.infer("shipped", [[5.1, 3.5, 1.4, 0.2]]).status_code == 200
    history = "\n".join(events(synced, "shipped"))
    assert f"GitApplied: git source git: applied from {repo.as_uri()} main commit {first[:12]}" in (
        history
    )
    assert f"GitCommitRefused: git source git: commit {second[:12]} not applied" in history
    described = synced.cli("describe", "model", "shipped")
    assert "GitCommitRefused" in described.stdout
    assert f"GitOps:       source git: {repo.as_uri()} branch main path models" in described.stdout
    assert f"applied {first[:12]}; Failed: commit {second[:12]} not applied" in described.stdout

    fixed = MODEL.format(uri=uri, extra="  batching: {maxBatchSize: 8}\n")
    files = {"models/shipped.yaml": fixed, "models/extra.yaml": None}
    third = commit(repo, files, "fix", date="2026-01-05T10:00:00+00:00")
    _sync_now(synced)
    wait_for(lambda: _status(synced)["lastAppliedCommit"] == third, "the fix applied", 30)
    assert synced.model("shipped")["spec"]["batching"]["maxBatchSize"] == 8
    # The release of the fix counts its lead time from the commit, not from the sync.
    annotations = synced.model("shipped")["metadata"]["annotations"]
    assert annotations["modelplane.io/commit-time"] == "2026-01-05T10:00:00+00:00"
    wait_for(lambda: synced.model("shipped")["status"]["stableRevision"] == "shipped-r2", "r2", 30)
    releases = httpx.get(f"{synced.api}/apis/releases.modelplane.io/v1alpha1/releases").json()
    fix = next(r for r in releases["items"] if r["revision"] == "shipped-r2")
    assert fix["started"] == "2026-01-05T10:00:00+00:00"
    assert fix["leadTimeSeconds"] > 300 * 86_400
    shown = synced.cli("gitops", "status")
    assert shown.returncode == 0, shown.stderr
    assert f"applied    {third[:12]}" in shown.stdout


def test_a_change_by_hand_is_reverted_by_self_heal(synced: Platform, tmp_path: Path) -> None:
    _edit_by_hand(synced, tmp_path, 2)
    _sync_now(synced)

    def healed() -> bool:
        return synced.model("shipped")["spec"]["batching"]["maxBatchSize"] == 8

    wait_for(healed, "the hand-made change reverted to the commit's spec", 30)
    status = _status(synced)
    assert "reverted drift of default/shipped" in status["message"]
    assert status["drift"] == []
    assert any(e.startswith("GitDriftReverted: ") for e in events(synced, "shipped"))


def test_a_restart_applies_nothing_twice(synced: Platform, repo: Path) -> None:
    before = synced.model("shipped")["metadata"]
    revisions = httpx.get(
        f"{synced.api}/apis/modelplane.io/v1alpha1/namespaces/default/models/shipped/revisions",
        timeout=5,
    ).json()
    assert synced.stop() == 0
    synced.start()
    _sync_now(synced)
    wait_for(lambda: _status(synced)["result"] == "Applied", "the source back", 30)
    after = synced.model("shipped")["metadata"]
    assert after["generation"] == before["generation"]
    again = httpx.get(
        f"{synced.api}/apis/modelplane.io/v1alpha1/namespaces/default/models/shipped/revisions",
        timeout=5,
    ).json()
    assert json.dumps(again) == json.dumps(revisions)


def test_without_self_heal_drift_is_reported_and_left(repo: Path, tmp_path: Path) -> None:
    options = ("--git", repo.as_uri(), "--git-path", "models", "--git-interval", "600")
    platform = Platform(tmp_path / "state", tmp_path / "up.log", options=options)
    try:
        _sync_now(platform)
        wait_for(lambda: _status(platform)["result"] == "Applied", "the repository applied", 30)
        _edit_by_hand(platform, tmp_path, 3)
        _sync_now(platform)
        wait_for(lambda: _status(platform)["drift"] == ["default/shipped"], "drift reported", 30)
        assert "drift: default/shipped changed by hand" in _status(platform)["message"]
        assert platform.model("shipped")["spec"]["batching"]["maxBatchSize"] == 3  # left alone
        assert any(e.startswith("GitDrift: ") for e in events(platform, "shipped"))
        shown = platform.cli("gitops", "status")
        assert "drift      default/shipped (changed by hand)" in shown.stdout
    finally:
        platform.stop()


def test_a_change_tried_here_is_promoted_to_a_branch_and_ships_when_merged(
    synced: Platform, repo: Path, tmp_path: Path
) -> None:
    _edit_by_hand(synced, tmp_path, 4)  # tried on the running platform first
    promote = ("promote", "shipped", "--to-git", str(repo), "--branch", "tune", "--path", "models")
    done = synced.cli(*promote)
    assert done.returncode == 0, done.stderr
    assert "updated models/shipped.yaml on branch tune" in done.stdout
    assert _git(repo, "rev-list", "--count", "main..tune") == "1"  # one commit, for review
    written = yaml.safe_load(_git(repo, "show", "tune:models/shipped.yaml"))
    assert written["spec"]["batching"]["maxBatchSize"] == 4
    assert "status" not in written
    assert set(written["metadata"]) <= {"name", "labels", "annotations"}  # nothing server-set
    assert _git(repo, "ls-tree", "-r", "--name-only", "tune", "models") == "models/shipped.yaml"

    again = synced.cli(*promote)
    assert again.returncode != 0
    assert "branch 'tune' exists" in again.stderr  # history is never rewritten

    _git(repo, "merge", "--ff-only", "-q", "tune")  # the pull request, merged
    merged = _git(repo, "rev-parse", "HEAD")
    _sync_now(synced)
    wait_for(lambda: _status(synced)["lastAppliedCommit"] == merged, "the merge applied", 30)
    assert _status(synced)["drift"] == []  # what runs is what the repository says
    assert synced.model("shipped")["spec"]["batching"]["maxBatchSize"] == 4


def test_a_sync_killed_midway_completes_the_same_commit_once(
    iris_dir: Path, tmp_path: Path
) -> None:
    repo = tmp_path / "many"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    uri = (iris_dir / "model.onnx").as_uri()
    scaled_to_zero = "  scaling: {minReplicas: 0}\n"
    files = {
        f"models/m{i:02}.yaml": MODEL.format(uri=uri, extra=scaled_to_zero).replace(
            "name: shipped", f"name: m{i:02}"
        )
        for i in range(40)
    }
    head = commit(repo, files, "forty models")
    options = ("--git", repo.as_uri(), "--git-path", "models", "--git-interval", "600")
    platform = Platform(tmp_path / "state", tmp_path / "up.log", options=options)
    try:
        _sync_now(platform)

        def some_applied() -> bool:
            listed = httpx.get(f"{platform.api}{API}/namespaces/default/models", timeout=5)
            return 0 < len(listed.json()["items"]) < 40

        wait_for(some_applied, "the sync under way", 30)
        assert platform.stop(signal.SIGKILL) == -signal.SIGKILL  # mid-sync, no goodbye
        platform.start()
        _sync_now(platform)
        wait_for(lambda: _status(platform)["lastAppliedCommit"] == head, "the commit applied", 120)
        listed = httpx.get(f"{platform.api}{API}/namespaces/default/models", timeout=5).json()
        assert sorted(m["metadata"]["name"] for m in listed["items"]) == sorted(
            f"m{i:02}" for i in range(40)
        )
        assert {m["metadata"]["generation"] for m in listed["items"]} == {1}  # each applied once
        assert _status(platform)["managed"] == sorted(f"default/m{i:02}" for i in range(40))
    finally:
        platform.stop()
