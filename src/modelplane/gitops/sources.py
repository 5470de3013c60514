"""The embedded platform's git sources: given at start (``modelplane up --git``) or added while
it runs (``modelplane gitops add``, ``POST /gitops``), and kept in ``<state>/gitops/sources.json``
(readable by its owner only: it holds the webhook secrets) so that a restart brings them back.
Each source runs its own sync; a Model belongs to at most one source (a commit that names a
Model another source manages is refused)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
from pathlib import Path

from pydantic import ValidationError

from modelplane.api.manifests import problems_from
from modelplane.errors import AlreadyExistsError, NotFoundError, SpecError
from modelplane.gitops.sync import SECRET_FIELDS, EventSink, GitSourceSpec, GitSync
from modelplane.processes import cancel_all

log = logging.getLogger(__name__)


def parse_source(document: object) -> GitSourceSpec:
    """A source from its wire form, or SpecError naming each bad field."""
    if not isinstance(document, dict):
        raise SpecError("a git source must be an object")
    try:
        return GitSourceSpec.model_validate(document, strict=True)
    except ValidationError as exc:
        raise SpecError("invalid git source", problems_from(exc, secret=SECRET_FIELDS)) from exc


class GitSources:
    def __init__(
        self,
        state_dir: Path,
        api_url: str,
        record: EventSink,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.state_dir, self.api_url, self.record = state_dir, api_url, record
        self.headers = headers or {}
        self._file = state_dir / "gitops" / "sources.json"
        self.syncs: dict[str, GitSync] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._running = False
        for spec in self._saved():
            self.syncs[spec.name] = self._sync(spec)

    def _sync(self, spec: GitSourceSpec) -> GitSync:
        return GitSync(
            spec, self.state_dir, self.api_url, self.record, owners=self.names,
            headers=self.headers,
        )  # fmt: skip

    def names(self) -> set[str]:
        return set(self.syncs)

    def add(self, spec: GitSourceSpec, *, replace: bool = False) -> GitSync:
        """Add a source and start syncing it; an unchanged one is left as it is."""
        current = self.syncs.get(spec.name)
        if current is not None and current.spec == spec:
            return current
        if current is not None and not replace:
            raise AlreadyExistsError(f"git source {spec.name!r} exists with other settings")
        if current is not None:
            self._stop(spec.name)
        sync = self.syncs[spec.name] = self._sync(spec)
        self._save()
        if self._running:
            self._run(sync)
        return sync

    async def remove(self, name: str) -> None:
        """Stop a source and forget it; the Models it applied stay as they are."""
        if name not in self.syncs:
            raise NotFoundError(f"git source {name!r} not found")
        task = self._stop(name)
        if task is not None:
            await cancel_all([task])
        sync = self.syncs.pop(name)
        self._save()
        shutil.rmtree(sync.mirror.directory, ignore_errors=True)
        sync.forget()

    def start(self) -> None:
        self._running = True
        for sync in self.syncs.values():
            self._run(sync)

    async def close(self) -> None:
        self._running = False
        await cancel_all(list(self._tasks.values()))
        self._tasks.clear()

    def _run(self, sync: GitSync) -> None:
        name = sync.spec.name
        self._tasks[name] = asyncio.get_running_loop().create_task(
            sync.run(), name=f"git source {name}"
        )

    def _stop(self, name: str) -> asyncio.Task[None] | None:
        task = self._tasks.pop(name, None)
        if task is not None:
            task.cancel()
        return task

    def _saved(self) -> list[GitSourceSpec]:
        try:
            saved = json.loads(self._file.read_text())
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            log.error("git sources in %s unreadable (%s): starting without them", self._file, exc)
            return []
        found = []
        for item in saved:
            try:
                found.append(parse_source(item))
            except SpecError as exc:
                log.error("git source in %s skipped: %s", self._file, exc)
        return found

    def _save(self) -> None:
        self._file.parent.mkdir(parents=True, exist_ok=True)
        specs = [s.spec.model_dump(mode="json", by_alias=True) for s in self.syncs.values()]
        partial = self._file.with_suffix(".tmp")
        partial.unlink(missing_ok=True)  # so that the mode below is the one it is made with
        with os.fdopen(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as out:
            out.write(json.dumps(specs, indent=1))
        os.replace(partial, self._file)
