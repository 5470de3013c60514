"""A Model's spec written into a git repository as a commit on a new branch: a change tried on
a running platform becomes a pull request to the repository that GitOps serves from.

The repository is cloned into a temporary directory, the new branch starts at ``base``, and the
manifest replaces the document of the same Model (or its item in a ``List``) if the directory
already holds one (so the repository never defines a Model twice, which a sync would refuse),
else it becomes ``<path>/<name>.yaml``. The branch must not exist yet: a promotion never
rewrites history.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from modelplane.api import Model
from modelplane.api.manifests import is_model_list, to_wire
from modelplane.control.gitops import MANIFEST_SUFFIXES
from modelplane.gitops.repository import GitError, GitMirror, git

# Metadata the control plane sets; a repository holds only what a person would write.
SERVER_SET = ("uid", "resourceVersion", "generation", "creationTimestamp")
AUTHOR = {"GIT_AUTHOR_NAME": "modelplane", "GIT_AUTHOR_EMAIL": "modelplane@localhost"}


@dataclass(frozen=True)
class Promotion:
    branch: str
    commit: str
    file: str  # the manifest's path in the repository
    created: bool  # a new file, rather than a Model's document replaced


def manifest(model: Model) -> dict[str, Any]:
    """The Model as a person would commit it: no status, no server-set metadata."""
    wire = to_wire(model, include_status=False)
    meta = {k: v for k, v in wire["metadata"].items() if k not in SERVER_SET}
    if meta.get("namespace") == "default":
        meta.pop("namespace")
    return {
        "apiVersion": wire["apiVersion"],
        "kind": wire["kind"],
        "metadata": meta,
        "spec": wire["spec"],
    }


def promote(
    model: Model, url: str, branch: str, *, base: str = "main", path: str = ".", message: str = ""
) -> Promotion:
    GitMirror.check_branch(branch)
    GitMirror.check_branch(base)
    if url.startswith("-"):
        raise GitError(f"git repository {url!r} is not a path or URL")
    if Path(url).exists():
        url = str(Path(url).resolve())
    with tempfile.TemporaryDirectory(prefix="modelplane-promote-") as tmp:
        work = Path(tmp) / "repo"
        git(Path(tmp), "clone", "--quiet", "--branch", base, "--single-branch", "--", url, "repo")
        if git(work, "ls-remote", "--heads", "origin", branch).strip():
            raise GitError(f"branch {branch!r} exists in {url} already; name a new one")
        git(work, "switch", "--quiet", "-c", branch)
        file, created = _write(work, path, model)
        git(work, "add", "--", file)
        title = message or f"Promote {model.key} from a running modelplane"
        git(work, "commit", "--quiet", "-m", title, env=_identity(work))
        commit = git(work, "rev-parse", "HEAD").strip()
        git(work, "push", "--quiet", "origin", f"refs/heads/{branch}")
    return Promotion(branch, commit, file, created)


def _write(work: Path, path: str, model: Model) -> tuple[str, bool]:
    """Put the manifest where the Model is defined, or in a file of its own."""
    directory = PurePosixPath(path.strip("/") or ".")
    written = manifest(model)
    for candidate in sorted((work / directory).rglob("*")):
        if not candidate.name.endswith(MANIFEST_SUFFIXES) or not candidate.is_file():
            continue
        try:
            documents = list(yaml.safe_load_all(candidate.read_text()))
        except yaml.YAMLError:
            continue  # not ours to judge: the sync reports broken files
        if _replace(documents, model, written):
            candidate.write_text(yaml.safe_dump_all(documents, sort_keys=False))
            return str(candidate.relative_to(work)), False
    target = work / directory / f"{model.metadata.name}.yaml"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(yaml.safe_dump(written, sort_keys=False))
    return str(target.relative_to(work)), True


def _replace(documents: list[Any], model: Model, written: dict[str, Any]) -> bool:
    """Put ``written`` in place of the Model's document, or of its item in a List; False if
    neither is there."""
    for index, document in enumerate(documents):
        if _same(document, model):
            documents[index] = written
            return True
        items = document.get("items") if is_model_list(document) else None
        if isinstance(items, list) and _replace(items, model, written):
            return True
    return False


def _same(document: Any, model: Model) -> bool:
    if not isinstance(document, dict) or document.get("kind") != "Model":
        return False
    meta = document.get("metadata") or {}
    namespace = meta.get("namespace") or "default"
    return bool(meta.get("name") == model.metadata.name and namespace == model.metadata.namespace)


def _identity(work: Path) -> dict[str, str]:
    """Commit as the user if git knows them, else as modelplane."""
    try:
        configured = git(work, "config", "user.email").strip()
    except GitError:  # git says 1 when it is unset
        configured = ""
    if configured:
        return {}
    return {
        **AUTHOR,
        "GIT_COMMITTER_NAME": "modelplane",
        "GIT_COMMITTER_EMAIL": "modelplane@localhost",
    }
