"""``hf://org/name`` and ``hf://org/name@revision`` sources: a Hugging Face hub repository, as a
directory.

huggingface_hub does what only it should: speak the hub's API, find the token (``HF_TOKEN``, else
the file ``hf auth login`` writes), download into the hub's own cache (``HF_HUB_CACHE``, else
``$HF_HOME/hub``), content-addressed by each file's ETag and shared with every other tool that
uses it. A moving revision (a branch, a tag; ``main`` when none is given) is resolved to its
commit: online with the hub, under ``HF_HUB_OFFLINE=1`` from the ``refs/`` the hub cache keeps.
The commit's files are then placed under the staging area, hard-linked from the hub cache where
it is on the same file system (so the bytes are on disk once), each checked against the content
address it is stored under. The settings are read from the environment when a source is
fetched, not when the library is imported, so a replica and a test see the same thing.

Errors are mapped to the artifact errors here and name the repository, the revision and the hub,
never the token.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
from huggingface_hub import HfApi, snapshot_download
from huggingface_hub.errors import (
    DisabledRepoError,
    GatedRepoError,
    HfHubHTTPError,
    HFValidationError,
    IncompleteSnapshotError,
    LocalEntryNotFoundError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
    RevisionNotFoundError,
    RevisionResolutionError,
)
from huggingface_hub.utils.tqdm import tqdm

from modelplane.api import Source
from modelplane.artifacts.cache import Staging
from modelplane.artifacts.parts import Transfer
from modelplane.artifacts.paths import Limits
from modelplane.artifacts.snapshots import place_snapshot
from modelplane.artifacts.verifying import shown
from modelplane.errors import (
    ArtifactAccessDeniedError,
    ArtifactError,
    ArtifactNotFoundError,
    ArtifactUnreachableError,
)

DEFAULT_ENDPOINT = "https://huggingface.co"
DEFAULT_REVISION = "main"
COMMIT = re.compile(r"[0-9a-f]{40}")
API_TIMEOUT = 30.0  # seconds for one call of the hub's API
_TRUE = frozenset({"1", "ON", "YES", "TRUE"})  # what the library takes as set


@dataclass(frozen=True)
class Hub:
    """Where a hub source comes from, as the replica's environment says when it is fetched."""

    endpoint: str
    cache: Path
    offline: bool

    @classmethod
    def from_environment(cls, endpoint: str | None, environ: Mapping[str, str]) -> Hub:
        offline = environ.get("HF_HUB_OFFLINE") or environ.get("TRANSFORMERS_OFFLINE") or ""
        chosen = endpoint or environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT
        return cls(chosen.rstrip("/"), hub_cache(environ), offline.upper() in _TRUE)


def hub_cache(environ: Mapping[str, str]) -> Path:
    """The hub cache the library uses: ``HF_HUB_CACHE``, the older ``HUGGINGFACE_HUB_CACHE``,
    ``$HF_HOME/hub``, else ``$XDG_CACHE_HOME/huggingface/hub`` (``~/.cache`` by default)."""
    for variable in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if environ.get(variable):
            return Path(os.path.expandvars(environ[variable])).expanduser()
    home = environ.get("HF_HOME")
    if not home:
        home = str(Path(environ.get("XDG_CACHE_HOME") or "~/.cache") / "huggingface")
    return Path(os.path.expandvars(home)).expanduser() / "hub"


@dataclass(frozen=True)
class HubLocation:
    repo: str  # "org/name", or a bare "name" of the hub's oldest repositories
    revision: str | None  # a branch, a tag or a commit; None for the default branch

    @classmethod
    def parse(cls, uri: str) -> HubLocation:
        repo, _, revision = uri.removeprefix("hf://").partition("@")
        return cls(repo, revision or None)

    @property
    def name(self) -> str:
        """The artifact's name in the cache: the repository's own name."""
        return self.repo.rsplit("/", 1)[-1]


class _Quiet(tqdm):
    """The library's progress bars, silenced: a replica's log is lines, not a terminal."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["disable"] = True
        super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]  # tqdm has no hints


class HubRemote:
    """One hub repository at one revision, fetched into a cache staging area."""

    def __init__(self, source: Source, limits: Limits, transfer: Transfer) -> None:
        self.uri = source.uri
        self.location = HubLocation.parse(source.uri)
        self.limits, self.workers = limits, transfer.workers
        self.hub = Hub.from_environment(source.endpoint, os.environ)
        self.where = shown(self.hub.endpoint)

    def resolved(self) -> str:
        """``hf://org/name@<commit>``: the commit the revision names now."""
        revision = self.location.revision
        if revision is not None and COMMIT.fullmatch(revision):
            return self.uri
        return f"hf://{self.location.repo}@{self._commit()}"

    def download(self, staging: Staging) -> Path:
        """The repository's files at the resolved commit, as a plain directory under
        ``staging.content`` (not yet verified against the pinned digest)."""
        commit = self._commit()
        with self._mapped(commit):
            snapshot = snapshot_download(
                self.location.repo,
                revision=commit,
                cache_dir=self.hub.cache,
                endpoint=self.hub.endpoint,
                local_files_only=self.hub.offline,
                max_workers=self.workers,
                tqdm_class=_Quiet,
            )
        target = staging.content / self.location.name
        place_snapshot(Path(snapshot), target, self.limits, self._shown(commit), self.location.repo)
        return target

    def _commit(self) -> str:
        revision = self.location.revision or DEFAULT_REVISION
        if COMMIT.fullmatch(revision):
            return revision
        api = HfApi(endpoint=self.hub.endpoint)
        with self._mapped(revision):
            if self.hub.offline:
                found = api.resolve_revision(
                    self.location.repo, revision=revision, cache_dir=self.hub.cache,
                    local_files_only=True,
                )  # fmt: skip
                return found.resolved
            sha = api.model_info(self.location.repo, revision=revision, timeout=API_TIMEOUT).sha
        if sha is None or not COMMIT.fullmatch(sha):
            raise ArtifactError(
                f"the hub {self.where} named no commit for {self._shown(revision)}; check "
                f"source.endpoint or HF_ENDPOINT points at a Hugging Face hub"
            )
        return sha

    def _shown(self, revision: str) -> str:
        return f"hf://{self.location.repo}@{revision}"

    @contextmanager
    def _mapped(self, revision: str) -> Iterator[None]:
        """The library's failures, as artifact errors naming the repository and revision."""
        try:
            yield
        except (HFValidationError, LocalEntryNotFoundError, RevisionResolutionError) as exc:
            raise self._local(exc, revision) from exc
        except HfHubHTTPError as exc:
            raise self._answered(exc, revision) from exc
        except (httpx2.TransportError, OfflineModeIsEnabled, ConnectionError) as exc:
            raise self._unreachable(exc, revision) from exc

    def _local(self, exc: Exception, revision: str) -> ArtifactError:
        source = self._shown(revision)
        if isinstance(exc, HFValidationError):
            return ArtifactError(
                f"{source}: {self.location.repo!r} is not a valid Hugging Face repository name "
                f"(letters, digits, '-', '_' and '.', no '--' nor '..'); correct source.uri"
            )
        if isinstance(exc, IncompleteSnapshotError):
            return ArtifactNotFoundError(
                f"{source}: the hub cache {self.hub.cache} holds only part of that commit and "
                f"{self._cannot_ask()}; {self._fill_cache(revision)}"
            )
        if self.hub.offline:
            return ArtifactNotFoundError(
                f"{source} is not in the hub cache {self.hub.cache} and {self._cannot_ask()}; "
                f"{self._fill_cache(revision)}, or unset HF_HUB_OFFLINE"
            )
        return self._unreachable(exc, revision)

    def _cannot_ask(self) -> str:
        if self.hub.offline:
            return "HF_HUB_OFFLINE=1 forbids asking the hub"
        return f"the hub {self.where} could not be asked"

    def _fill_cache(self, revision: str) -> str:
        return (
            f"fetch it into that cache where the hub is reachable (hf download "
            f"{self.location.repo} --revision {revision}, with HF_HUB_CACHE={self.hub.cache})"
        )

    def _answered(self, exc: HfHubHTTPError, revision: str) -> ArtifactError:
        source, status = self._shown(revision), exc.response.status_code
        holder = "HF_TOKEN (or the token of hf auth login)"
        if isinstance(exc, GatedRepoError):
            return ArtifactAccessDeniedError(
                f"{source} at {self.where} is a gated repository (HTTP {status}): accept its "
                f"conditions at {self.where}/{self.location.repo} with the account whose token "
                f"the replica has in {holder}"
            )
        if isinstance(exc, RepositoryNotFoundError):
            return ArtifactNotFoundError(
                f"repository {self.location.repo} not found at {self.where} (HTTP {status}); "
                f"check the name, and for a private repository give the replica {holder} with "
                f"a token that may read it"
            )
        if isinstance(exc, RevisionNotFoundError):
            return ArtifactNotFoundError(
                f"revision {revision!r} not found in repository {self.location.repo} at "
                f"{self.where} (HTTP {status}); check the branch, tag or commit in source.uri"
            )
        if isinstance(exc, DisabledRepoError) or status in (401, 403):
            return ArtifactAccessDeniedError(
                f"access to {source} at {self.where} was denied (HTTP {status}); check that "
                f"{holder} holds a token that may read this repository"
            )
        if status == 429 or status >= 500:
            return self._unreachable(exc, revision, f"HTTP {status}")
        return ArtifactError(f"fetching {source} from {self.where} failed (HTTP {status})")

    def _unreachable(
        self, exc: BaseException, revision: str, said: str | None = None
    ) -> ArtifactUnreachableError:
        return ArtifactUnreachableError(
            f"the hub {self.where} did not serve {self._shown(revision)} "
            f"({said or type(exc).__name__}); check source.endpoint or HF_ENDPOINT and that "
            f"the hub is up, or serve it from the hub cache {self.hub.cache} with "
            f"HF_HUB_OFFLINE=1"
        )
