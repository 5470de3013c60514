"""GitOps, the parts under every sync: reading one commit of a real git repository (over
file:// and git daemon on loopback), and deciding what a commit does, all or nothing."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from modelplane.api import parse_model
from modelplane.control.gitops import SyncPlan, SyncRefused, plan_sync
from modelplane.gitops.promotion import promote
from modelplane.gitops.repository import GitError, GitMirror
from tests.processes import free_port, stop_process

IRIS = """\
apiVersion: modelplane.io/v1alpha1
kind: Model
metadata: {{name: {name}}}
spec:
  source: {{uri: 'https://models.example.com/iris.onnx'}}
  format: onnx
  task: classification
{extra}"""


def _git(repo: Path, *args: str, env: dict[str, str] | None = None) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True,
        env={**os.environ, **(env or {})},
    ).stdout.strip()  # fmt: skip


def commit(repo: Path, files: dict[str, str | None], message: str, date: str | None = None) -> str:
    """Write (or, for None, delete) ``files`` and commit them (made at ``date``, ISO 8601, when
    given); the new commit's id."""
    for name, text in files.items():
        path = repo / name
        if text is None:
            path.unlink()
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    _git(repo, "add", "-A")
    dated = {"GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date} if date else {}
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", message,
         env=dated)  # fmt: skip
    return _git(repo, "rev-parse", "HEAD")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "models-repo"
    path.mkdir()
    _git(path, "init", "-q", "-b", "main")
    return path


@pytest.fixture
def daemon(repo: Path) -> Iterator[str]:
    """The repository served by a real `git daemon` on loopback: its git:// URL."""
    port = free_port()
    process = subprocess.Popen(
        ["git", "daemon", "--reuseaddr", "--export-all", f"--base-path={repo.parent}",
         "--listen=127.0.0.1", f"--port={port}", str(repo.parent)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"git://127.0.0.1:{port}/{repo.name}"
    deadline = time.monotonic() + 10
    while subprocess.run(["git", "ls-remote", url], capture_output=True).returncode != 0:
        assert time.monotonic() < deadline, "git daemon did not start"
        time.sleep(0.1)
    yield url
    stop_process(process)


@pytest.mark.parametrize("served", ["file", "daemon"])
def test_a_sync_reads_exactly_one_commit(
    repo: Path, tmp_path: Path, served: str, request: pytest.FixtureRequest
) -> None:
    first = commit(
        repo,
        {"models/iris.yaml": IRIS.format(name="iris", extra=""), "README.md": "models\n",
         "other/ignored.yaml": "not: read"},
        "iris",
    )  # fmt: skip
    url = repo.as_uri() if served == "file" else request.getfixturevalue("daemon")
    mirror = GitMirror(url, tmp_path / "mirror")
    assert mirror.fetch("main") == first
    second = commit(repo, {"models/wine.yml": IRIS.format(name="wine", extra="")}, "wine")
    # What was fetched stays readable as it was, whatever the branch does next.
    assert set(mirror.files(first, "models")) == {"models/iris.yaml"}
    assert mirror.fetch("main") == second
    assert set(mirror.files(second, "models/")) == {"models/iris.yaml", "models/wine.yml"}
    assert "name: wine" in mirror.files(second, "models")["models/wine.yml"]


def test_an_unreachable_source_is_a_clear_error(tmp_path: Path) -> None:
    mirror = GitMirror((tmp_path / "nowhere").as_uri(), tmp_path / "mirror")
    with pytest.raises(GitError, match="git fetch of file://"):
        mirror.fetch("main")


def test_a_valid_commit_applies_every_model() -> None:
    files = {
        "models/iris.yaml": IRIS.format(name="iris", extra=""),
        "models/both.yaml": IRIS.format(name="a", extra="")
        + "---\n"
        + IRIS.format(name="b", extra=""),
    }
    plan = plan_sync("c1", files, frozenset(), prune=False)
    assert isinstance(plan, SyncPlan)
    assert [m.key for m in plan.apply] == ["default/a", "default/b", "default/iris"]
    assert plan.inventory == {"default/a", "default/b", "default/iris"}


def test_one_invalid_manifest_refuses_the_whole_commit_naming_file_and_field() -> None:
    files = {
        "models/iris.yaml": IRIS.format(name="iris", extra=""),
        "models/bad.yaml": IRIS.format(name="bad", extra="  scaling: {minReplicas: -1}\n"),
        "models/dup.yaml": IRIS.format(name="iris", extra=""),
    }
    refused = plan_sync("abc123", files, frozenset({"default/iris"}), prune=True)
    assert isinstance(refused, SyncRefused)
    assert any(
        p.startswith("models/bad.yaml") and "spec.scaling.minReplicas" in p
        for p in refused.problems
    ), refused.problems
    assert "models/iris.yaml: Model default/iris is also defined in models/dup.yaml" in (
        refused.problems
    )
    assert refused.message.startswith("commit abc123 not applied: ")


def test_pruning_touches_only_the_inventory_and_only_when_asked() -> None:
    files = {"iris.yaml": IRIS.format(name="iris", extra="")}
    inventory = frozenset({"default/iris", "default/old"})
    kept = plan_sync("c2", files, inventory, prune=False)
    assert isinstance(kept, SyncPlan)
    assert kept.prune == ()
    assert kept.inventory == inventory  # still this source's, for a later prune
    pruned = plan_sync("c2", files, inventory, prune=True)
    assert isinstance(pruned, SyncPlan)
    assert pruned.prune == ("default/old",)  # never a Model this source did not create
    assert pruned.inventory == {"default/iris"}


def test_an_emptied_directory_is_refused_rather_than_pruning_everything() -> None:
    refused = plan_sync("c3", {}, frozenset({"default/iris"}), prune=True)
    assert isinstance(refused, SyncRefused)
    assert "no Models in the directory, while this source manages 1" in refused.message
    first = plan_sync("c0", {}, frozenset(), prune=True)  # a new source with nothing yet: fine
    assert isinstance(first, SyncPlan)
    assert first.apply == ()


def test_a_source_cannot_smuggle_git_options(tmp_path: Path) -> None:
    with pytest.raises(GitError, match="is not a path or URL"):
        GitMirror("--upload-pack=touch /tmp/owned", tmp_path / "mirror")
    for branch in ("main..other", "-b", "a:b", "x@{1}"):
        with pytest.raises(GitError, match="is not a valid branch name"):
            GitMirror.check_branch(branch)
    GitMirror.check_branch("release/2026-11")


def test_promotion_replaces_the_models_document_or_adds_a_file(tmp_path: Path) -> None:
    repo = tmp_path / "models"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    both = IRIS.format(name="a", extra="") + "---\n" + IRIS.format(name="b", extra="")
    commit(repo, {"models/all.yaml": both, "README.md": "models\n"}, "two models")
    changed = parse_model(
        yaml.safe_load(IRIS.format(name="b", extra="  batching: {maxBatchSize: 3}\n"))
    )
    done = promote(changed, str(repo), "b-batching", path="models")
    assert (done.file, done.created) == ("models/all.yaml", False)
    documents = list(yaml.safe_load_all(_git(repo, "show", "b-batching:models/all.yaml")))
    assert [d["metadata"]["name"] for d in documents] == ["a", "b"]
    assert documents[0] == yaml.safe_load(IRIS.format(name="a", extra=""))  # untouched
    assert documents[1]["spec"]["batching"]["maxBatchSize"] == 3

    other = parse_model(yaml.safe_load(IRIS.format(name="c", extra="")))
    added = promote(other, str(repo), "add-c", path="models", message="Add c")
    assert (added.file, added.created) == ("models/c.yaml", True)
    assert _git(repo, "log", "-1", "--format=%s", "add-c") == "Add c"
    assert _git(repo, "rev-parse", "main") != added.commit  # main itself untouched

    with pytest.raises(GitError, match="not a valid branch name"):
        promote(other, str(repo), "bad..name")


def test_promotion_replaces_a_models_item_in_a_list(tmp_path: Path) -> None:
    repo = tmp_path / "models"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    items = [yaml.safe_load(IRIS.format(name=name, extra="")) for name in ("a", "b")]
    listing = yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": items})
    commit(repo, {"models/listed.yaml": listing}, "a List of two models")
    changed = parse_model(
        yaml.safe_load(IRIS.format(name="b", extra="  batching: {maxBatchSize: 3}\n"))
    )
    done = promote(changed, str(repo), "b-batching", path="models")
    assert (done.file, done.created) == ("models/listed.yaml", False)
    files = {"models/listed.yaml": _git(repo, "show", "b-batching:models/listed.yaml")}
    plan = plan_sync(done.commit, files, frozenset(), prune=False)
    assert isinstance(plan, SyncPlan)
    assert [m.metadata.name for m in plan.apply] == ["a", "b"]
    assert plan.apply[1].spec.batching.max_batch_size == 3
