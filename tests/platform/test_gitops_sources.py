"""`modelplane gitops add|remove|sync|status`: several git sources on one running platform, each
with its own repository; a Model belongs to one source, sources survive a restart, and removing
one leaves its Models serving. Without ``--auth``, a source's push webhook takes unsigned calls
until the source has a secret (signed pushes under ``--auth``: ``test_auth.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.gitops.test_sync import _git, commit
from tests.platform.conftest import Platform, running_in, wait_for

MODEL = """\
apiVersion: modelplane.io/v1alpha1
kind: Model
metadata: {{name: {name}}}
spec:
  source: {{uri: '{uri}'}}
  format: onnx
  task: classification
  scaling: {{minReplicas: 0}}
  rollout: {{strategy: Immediate}}
"""


def _repo(root: Path, name: str, models: list[str], uri: str) -> Path:
    repo = root / name
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    files: dict[str, str | None] = {
        f"models/{m}.yaml": MODEL.format(name=m, uri=uri) for m in models
    }
    commit(repo, files, "models")
    return repo


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    yield from running_in(tmp_path_factory, "sources")


def _sources(platform: Platform) -> dict[str, dict[str, Any]]:
    listed = platform.cli("gitops", "status")
    assert listed.returncode == 0, listed.stderr
    items = httpx.get(f"{platform.api}/gitops", timeout=5).json()["items"]
    return {item["name"]: item for item in items}


def _managed_by(platform: Platform, name: str) -> str | None:
    labels = platform.model(name)["metadata"].get("labels") or {}
    found: str | None = labels.get("modelplane.io/gitops-source")
    return found


def test_sources_added_removed_and_kept_across_a_restart(
    platform: Platform, iris_dir: Path, tmp_path: Path
) -> None:
    uri = (iris_dir / "model.onnx").as_uri()
    team_a = _repo(tmp_path, "team-a", ["fraud", "shared"], uri)
    team_b = _repo(tmp_path, "team-b", ["churn", "shared"], uri)

    added = platform.cli("gitops", "add", "team-a", str(team_a), "--path", "models",
                         "--interval", "600")  # fmt: skip
    assert added.returncode == 0, added.stderr
    wait_for(lambda: _sources(platform)["team-a"]["result"] == "Applied", "team-a applied", 30)
    assert _managed_by(platform, "fraud") == "team-a"
    assert _managed_by(platform, "shared") == "team-a"

    # team-b's commit names a Model team-a manages: refused whole, churn not applied either.
    added = platform.cli("gitops", "add", "team-b", team_b.as_uri(), "--path", "models",
                         "--interval", "600")  # fmt: skip
    assert added.returncode == 0, added.stderr
    wait_for(lambda: _sources(platform)["team-b"]["result"] == "Failed", "team-b refused", 30)
    message = _sources(platform)["team-b"]["message"]
    assert "default/shared is managed by git source 'team-a'" in message
    assert platform.cli("get", "model", "churn").returncode != 0

    # The same name with other settings is a conflict; bad settings are named field by field.
    again = platform.cli("gitops", "add", "team-a", str(team_b))
    assert again.returncode != 0
    assert "git source 'team-a' exists with other settings" in again.stderr
    bad = platform.cli("gitops", "add", "Team_C", "x", "--branch", "a..b", "--interval", "0")
    assert bad.returncode != 0
    for field in ("name:", "branch:", "interval:"):
        assert field in bad.stderr, bad.stderr

    # Sources come back after a restart, without applying anything again.
    generation = platform.model("fraud")["metadata"]["generation"]
    assert platform.stop() == 0
    platform.start()
    assert set(_sources(platform)) == {"team-a", "team-b"}
    assert platform.cli("gitops", "sync").returncode == 0
    wait_for(lambda: _sources(platform)["team-a"]["result"] == "Applied", "team-a back", 30)
    assert platform.model("fraud")["metadata"]["generation"] == generation

    # Removing team-a leaves its Models serving; team-b may then take `shared` over.
    removed = platform.cli("gitops", "remove", "team-a")
    assert removed.returncode == 0, removed.stderr
    assert set(_sources(platform)) == {"team-b"}
    assert platform.model("fraud")["metadata"]["generation"] == generation
    commit(team_b, {"models/README.md": "churn and shared\n"}, "a new commit to try again")
    assert platform.cli("gitops", "sync", "team-b").returncode == 0
    wait_for(lambda: _sources(platform)["team-b"]["result"] == "Applied", "team-b applied", 30)
    assert _managed_by(platform, "shared") == "team-b"
    assert _managed_by(platform, "churn") == "team-b"
    gone = platform.cli("gitops", "remove", "team-a")
    assert gone.returncode != 0
    assert "git source 'team-a' not found" in gone.stderr


def test_without_auth_a_source_without_a_secret_takes_unsigned_pushes(
    platform: Platform, iris_dir: Path, tmp_path: Path
) -> None:
    uri = (iris_dir / "model.onnx").as_uri()
    repo = _repo(tmp_path, "hooks", ["hooked"], uri)
    assert platform.cli("gitops", "add", "open-hook", str(repo), "--path", "models",
                        "--interval", "600").returncode == 0  # fmt: skip
    wait_for(lambda: _sources(platform)["open-hook"]["result"] == "Applied", "applied", 30)
    pushed = commit(repo, {"models/README.md": "hooked\n"}, "a push")
    reply = httpx.post(f"{platform.api}/gitops/open-hook/webhook", json={"ref": "refs/heads/main"})
    assert reply.status_code == 202, reply.text
    assert reply.json() == {"syncing": ["open-hook"]}
    wait_for(lambda: _sources(platform)["open-hook"]["lastAppliedCommit"] == pushed,
             "the pushed commit applied", 30)  # fmt: skip

    # A secret comes from a file, is checked, and once set is required even here.
    key_file = tmp_path / "short.secret"
    key_file.write_text("tiny-one\n")
    bad = platform.cli("gitops", "add", "signed-hook", str(repo), "--webhook-secret-file",
                       str(key_file))  # fmt: skip
    assert bad.returncode != 0
    assert "webhookSecret: must be 16 to 256 characters, not 8" in bad.stderr
    assert "tiny-one" not in bad.stderr
    missing = platform.cli("gitops", "add", "signed-hook", str(repo), "--webhook-secret-file",
                           str(tmp_path / "nowhere"))  # fmt: skip
    assert missing.returncode != 0
    assert "--webhook-secret-file" in missing.stderr
    assert "cannot read it" in missing.stderr
    key_file.write_text("a-long-enough-shared-key-0123456789\n")
    added = platform.cli("gitops", "add", "signed-hook", str(repo), "--interval", "600",
                         "--path", "models", "--webhook-secret-file", str(key_file))  # fmt: skip
    assert added.returncode == 0, added.stderr
    unsigned = httpx.post(f"{platform.api}/gitops/signed-hook/webhook", json={})
    assert unsigned.status_code == 401
    assert "expected X-Hub-Signature-256 (GitHub)" in unsigned.json()["message"]
    assert _sources(platform)["signed-hook"]["webhook"]["signed"] is True
    assert _sources(platform)["open-hook"]["webhook"]["signed"] is False
