"""``modelplane up --git URL``: a git repository as the source of truth for Models.

Every ``interval`` (or at once, on the webhook) the source fetches its branch; a commit not yet
attempted is read whole at that commit, planned by ``control.gitops`` (all or nothing) and
applied through the control API like any client, so rollouts and their analysis apply to git
changes too. A refused commit is recorded with its reasons and not tried again until the branch
moves; the last applied commit keeps serving. Status is written after the applies: a sync cut
short (a crash, a kill) is done again, whole, at the next start, and re-applying an unchanged
spec changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal

import httpx
from pydantic import ConfigDict, Field, field_validator

from modelplane.api import COMMIT_TIME_ANNOTATION, Model, to_wire
from modelplane.api.meta import Wire
from modelplane.control.gitops import SyncRefused, plan_sync
from modelplane.gitops.repository import GitError, GitMirror

log = logging.getLogger(__name__)

SOURCE_LABEL = "modelplane.io/gitops-source"
GROUP_PATH = "/apis/modelplane.io/v1alpha1"
API = f"{GROUP_PATH}/namespaces"
SECRET_FIELDS = ("webhookSecret", "webhook_secret")  # never echoed in an error
SECRET_LENGTH = (16, 256)
# A git host sends the secret in a header (GitLab) or signs with its UTF-8 bytes (GitHub, Gitea):
# printable ASCII is the same on every host.
SECRET = Field(min_length=SECRET_LENGTH[0], max_length=SECRET_LENGTH[1], pattern=r"^[ -~]+$")


class GitSourceSpec(Wire):
    """A git source: where its Models are and how it syncs (``POST /gitops`` takes this)."""

    model_config = ConfigDict(frozen=True)

    name: Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")]
    url: Annotated[str, Field(min_length=1, description="A local path or any URL git fetches.")]
    branch: Annotated[str, Field(min_length=1)] = "main"
    path: Annotated[str, Field(min_length=1)] = Field(
        default=".", description="The repository's directory of Models."
    )
    interval: Annotated[float, Field(ge=1, le=86400)] = Field(
        default=30.0, description="Seconds between fetches (the webhook syncs at once)."
    )
    prune: bool = Field(default=False, description="Delete Models this source created once gone.")
    self_heal: bool = Field(
        default=False, description="Revert hand-made changes to its Models at each sync."
    )
    webhook_secret: Annotated[str, SECRET] | None = Field(
        default=None,
        repr=False,
        description="What a git host signs its push webhook with (never shown again).",
    )

    @field_validator("url", "branch", "path", mode="before")
    @classmethod
    def _printable(cls, value: object) -> object:
        # git is run with these as arguments: a NUL or a newline is never part of one
        if isinstance(value, str) and any(ord(c) < 32 or ord(c) == 127 for c in value):
            raise ValueError("must not contain control characters")
        return value

    @field_validator("webhook_secret", mode="before")
    @classmethod
    def _secret(cls, secret: object) -> object:
        # Said here rather than by the constraints: their messages would name a regex.
        if not isinstance(secret, str):
            return secret
        if not SECRET_LENGTH[0] <= len(secret) <= SECRET_LENGTH[1]:
            raise ValueError(
                f"must be {SECRET_LENGTH[0]} to {SECRET_LENGTH[1]} characters, not {len(secret)}"
                " (openssl rand -hex 32 makes a good one)"
            )
        if not all(" " <= c <= "~" for c in secret):
            raise ValueError("must be printable ASCII: no control characters, no other letters")
        return secret

    @field_validator("url")
    @classmethod
    def _url(cls, url: str) -> str:
        if url.startswith("-"):
            raise ValueError("must be a path or URL, not an option")
        return url

    @field_validator("branch")
    @classmethod
    def _branch(cls, branch: str) -> str:
        try:
            GitMirror.check_branch(branch)
        except GitError as exc:
            raise ValueError(str(exc)) from exc
        return branch

    @field_validator("path")
    @classmethod
    def _path(cls, path: str) -> str:
        if PurePosixPath(path).is_absolute() or ".." in PurePosixPath(path).parts:
            raise ValueError("must be a directory inside the repository")
        return path


@dataclass
class SourceStatus:
    name: str
    url: str
    branch: str
    path: str
    last_applied_commit: str | None = None
    last_attempted_commit: str | None = None
    result: str = "Pending"  # Applied, Failed, Unreachable
    message: str = ""
    managed: list[str] = field(default_factory=list)
    drift: list[str] = field(default_factory=list)  # managed Models changed by hand
    synced_at: str | None = None

    def wire(self) -> dict[str, Any]:
        parts = asdict(self)
        return {_camel(k): v for k, v in parts.items()}


def _camel(name: str) -> str:
    first, *rest = name.split("_")
    return first + "".join(p.title() for p in rest)


# An event on a Model: (namespace, name, "Normal" or "Warning", reason, message).
EventSink = Callable[[str, str, Literal["Normal", "Warning"], str, str], None]


def _no_events(*_: object) -> None:
    return None


class GitSync:
    def __init__(
        self,
        spec: GitSourceSpec,
        state_dir: Path,
        api_url: str,
        record: EventSink = _no_events,
        owners: Callable[[], set[str]] = set,
        headers: dict[str, str] | None = None,
    ) -> None:
        """``owners``: the names of the platform's sources now, whose Models this one leaves
        alone; ``headers``: of every call to the control API (its credential)."""
        self.spec, self.api_url, self.record = spec, api_url.rstrip("/"), record
        self.owners, self.headers = owners, headers or {}
        home = state_dir / "gitops"
        self.mirror = GitMirror(spec.url, home / f"{spec.name}.git")
        self._status_file = home / f"{spec.name}.json"
        self.status = self._load()
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Sync at once (the webhook)."""
        self._wake.set()

    def wire(self) -> dict[str, Any]:
        """The status as ``GET /gitops`` shows it: whether the webhook is signed, never with
        what."""
        signed = self.spec.webhook_secret is not None
        webhook = {"path": f"/gitops/{self.spec.name}/webhook", "signed": signed}
        return self.status.wire() | {"webhook": webhook}

    async def run(self) -> None:
        async with httpx.AsyncClient(
            base_url=self.api_url, timeout=30, headers=self.headers
        ) as client:
            while True:
                try:
                    await self.sync(client)
                except Exception:  # a bug must not end the source: log, retry next interval
                    log.exception("git sync of %s failed", self.spec.name)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.spec.interval)
                self._wake.clear()

    async def sync(self, client: httpx.AsyncClient) -> None:
        spec, status = self.spec, self.status
        try:
            commit = await asyncio.to_thread(self.mirror.fetch, spec.branch)
        except GitError as exc:
            self._record("Unreachable", str(exc))
            return
        if commit == status.last_attempted_commit:
            # Applied already (look for drift), or refused: that waits for the next commit.
            if status.result == "Applied" and commit == status.last_applied_commit:
                await self._check_drift(client, commit)
            return
        files = await asyncio.to_thread(self.mirror.files, commit, spec.path)
        plan = plan_sync(commit, files, frozenset(status.managed), spec.prune)
        if isinstance(plan, SyncRefused):
            self._refuse(commit, plan.message)
            return
        try:
            live = await self._live(client)
            taken = self._managed_elsewhere(live, plan.apply)
            if taken:
                self._refuse(commit, f"commit {commit[:12]} not applied: {taken}")
                return
            changed = [m for m in plan.apply if _compared(live.get(m.key)) != self._wanted(m)]
            made = await asyncio.to_thread(self.mirror.commit_time, commit) if changed else ""
            for model in changed:
                found = live.get(model.key)
                spec_changed = found is None or found["spec"] != self._wanted(model)["spec"]
                # Release lead time runs from the commit that changed the spec.
                await self._apply(client, model, made if spec_changed else _committed(found))
                where = f"{spec.url} {spec.branch} commit {commit[:12]}"
                self._event(model.key, "Normal", "GitApplied", f"applied from {where}")
            for key in plan.prune:
                namespace, name = key.split("/", 1)
                reply = await client.delete(f"{API}/{namespace}/models/{name}")
                if reply.status_code not in (200, 404):
                    raise RuntimeError(f"deleting {key}: HTTP {reply.status_code} {reply.text}")
        except (httpx.HTTPError, RuntimeError) as exc:
            # Not marked attempted: the whole commit is applied again at the next sync.
            self._record("Failed", f"commit {commit[:12]} partly applied, retrying: {exc}")
            return
        status.last_attempted_commit = commit
        status.last_applied_commit, status.managed = commit, sorted(plan.inventory)
        status.drift = []
        pruned = f", {len(plan.prune)} pruned" if plan.prune else ""
        said = f"{len(changed)} of {len(plan.apply)} Models changed{pruned}"
        self._record("Applied", f"commit {commit[:12]}: {said}")

    def _refuse(self, commit: str, message: str) -> None:
        """Nothing of ``commit`` applied; not tried again until the branch moves."""
        self.status.last_attempted_commit = commit
        self._record("Failed", message)
        log.warning("git source %s: %s", self.spec.name, message)
        for key in self.status.managed:  # what the refusal keeps at the last applied commit
            self._event(key, "Warning", "GitCommitRefused", message)

    async def _live(self, client: httpx.AsyncClient) -> dict[str, dict[str, Any]]:
        """Every Model on the platform, by key: its labels, annotations and spec."""
        reply = await client.get(f"{GROUP_PATH}/models")
        if reply.status_code != 200:
            raise RuntimeError(f"listing Models: HTTP {reply.status_code} {reply.text}")
        return {
            f"{m['metadata']['namespace']}/{m['metadata']['name']}": {
                "labels": m["metadata"].get("labels") or {},
                "annotations": m["metadata"].get("annotations") or {},
                "spec": m["spec"],
            }
            for m in reply.json()["items"]
        }

    def _wanted(self, model: Model) -> dict[str, Any]:
        """What ``_apply`` would make of ``model``, in ``_live``'s form: equal means no write."""
        wire = to_wire(self._labelled(model), include_status=False)
        meta = wire["metadata"]
        return {
            "labels": meta.get("labels") or {},
            "annotations": meta.get("annotations") or {},
            "spec": wire["spec"],
        }

    def _managed_elsewhere(self, live: dict[str, dict[str, Any]], models: Sequence[Model]) -> str:
        """Which of ``models`` another of the platform's sources manages, said as a refusal."""
        others = self.owners() - {self.spec.name}
        owner = {key: found["labels"].get(SOURCE_LABEL) for key, found in live.items()}
        taken = [f"{m.key} is managed by git source {owner[m.key]!r}" for m in models
                 if owner.get(m.key) in others]  # fmt: skip
        return "; ".join(taken)

    def forget(self) -> None:
        """The source is gone: its status goes too."""
        self._status_file.unlink(missing_ok=True)

    async def _check_drift(self, client: httpx.AsyncClient, commit: str) -> None:
        """Compare the managed Models with the applied commit; with selfHeal, apply it again."""
        files = await asyncio.to_thread(self.mirror.files, commit, self.spec.path)
        plan = plan_sync(commit, files, frozenset(self.status.managed), prune=False)
        if isinstance(plan, SyncRefused):
            return
        live = await self._live(client)
        drifted = [
            m for m in plan.apply if live.get(m.key, {}).get("spec") != self._wanted(m)["spec"]
        ]
        keys = [m.key for m in drifted]
        if keys == self.status.drift and not (keys and self.spec.self_heal):
            return  # nothing new to say
        if drifted and self.spec.self_heal:
            for model in drifted:
                await self._apply(client, model, _committed(live.get(model.key)))
                message = f"changed by hand; reverted to commit {commit[:12]}"
                self._event(model.key, "Normal", "GitDriftReverted", message)
            self.status.drift = []
            self._record("Applied", f"commit {commit[:12]}: reverted drift of {', '.join(keys)}")
            return
        for key in set(keys) - set(self.status.drift):
            self._event(key, "Warning", "GitDrift", f"differs from commit {commit[:12]}")
        self.status.drift = keys
        said = f"drift: {', '.join(keys)} changed by hand" if keys else "no drift"
        self._record("Applied", f"commit {commit[:12]} applied; {said}")

    def _labelled(self, model: Model) -> Model:
        """As applied: labelled with its source (the commit time is added only when applied)."""
        labelled = model.model_copy(deep=True)
        labelled.metadata.labels = {**model.metadata.labels, SOURCE_LABEL: self.spec.name}
        return labelled

    async def _apply(
        self, client: httpx.AsyncClient, model: Model, committed: str | None = None
    ) -> None:
        model = self._labelled(model)
        meta = model.metadata
        if committed:
            meta.annotations[COMMIT_TIME_ANNOTATION] = committed
        body = to_wire(model, include_status=False)
        path = f"{API}/{meta.namespace}/models"
        reply = await client.put(f"{path}/{meta.name}", json=body)
        if reply.status_code == 404:
            reply = await client.post(path, json=body)
        if reply.status_code >= 300:
            raise RuntimeError(f"applying {model.key}: HTTP {reply.status_code} {reply.text}")

    def _event(
        self, key: str, kind: Literal["Normal", "Warning"], reason: str, message: str
    ) -> None:
        namespace, name = key.split("/", 1)
        self.record(namespace, name, kind, reason, f"git source {self.spec.name}: {message}")

    def _record(self, result: str, message: str) -> None:
        status = self.status
        status.result, status.message = result, message
        status.synced_at = datetime.now(UTC).isoformat(timespec="seconds")
        self._status_file.parent.mkdir(parents=True, exist_ok=True)
        partial = self._status_file.with_suffix(".tmp")
        partial.write_text(json.dumps(asdict(status), indent=1))
        os.replace(partial, self._status_file)

    def _load(self) -> SourceStatus:
        spec = self.spec
        fresh = SourceStatus(spec.name, spec.url, spec.branch, spec.path)
        try:
            saved = json.loads(self._status_file.read_text())
        except (OSError, ValueError):
            return fresh
        if (saved.get("url"), saved.get("branch"), saved.get("path")) != (
            spec.url, spec.branch, spec.path
        ):  # fmt: skip
            return fresh  # another source under the same name: start over
        return SourceStatus(**saved)


def _compared(live: dict[str, Any] | None) -> dict[str, Any] | None:
    """A live Model as ``_wanted`` describes one: without the commit time the sync wrote."""
    if live is None:
        return None
    annotations = {k: v for k, v in live["annotations"].items() if k != COMMIT_TIME_ANNOTATION}
    return {**live, "annotations": annotations}


def _committed(live: dict[str, Any] | None) -> str | None:
    return None if live is None else live["annotations"].get(COMMIT_TIME_ANNOTATION)
