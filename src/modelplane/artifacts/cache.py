"""The content-addressed artifact cache: one verified copy per digest, shared by every replica.

Replicas are separate processes, so the cache coordinates through the file system only::

    <root>/entries/<digest>/<name>        a verified artifact (file or directory), read-only use
    <root>/entries/<digest>/.entry.json   its name, size and source; mtime = when last used
    <root>/partial/<key>/                 a fetch in progress or interrupted (resumable)
    <root>/locks/<key>.fetch              held exclusively while <key> is being fetched
    <root>/locks/<digest>.use             held shared by each process that uses the entry
    <root>/trash/                         entries being deleted
    <root>/references/<key>               the digest an immutable reference (an OCI digest, a
                                          hub commit, an MLflow version) was found to have

An entry appears by one ``rename`` of a complete, verified directory, so a reader sees all of it
or nothing. The fetch lock makes a digest fetched once however many replicas start together; the
use lock keeps an entry from eviction while any process holds it (``flock`` locks vanish with
their process, so a killed replica never pins an entry). Lock files are never deleted: deleting
one while another process opens it would let two processes hold "the" lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from modelplane.errors import ArtifactError

ENTRY_FILE = ".entry.json"


@dataclass(frozen=True)
class Entry:
    """One artifact in the cache."""

    digest: str
    path: Path  # the artifact itself: entries/<digest>/<name>
    size: int
    uri: str  # where it was first fetched from (credentials and queries removed)
    last_used: float  # seconds since the epoch


@dataclass
class Staging:
    """Where one fetch writes: ``content`` becomes the entry, ``state`` keeps what a restarted
    fetch needs to resume (finished parts)."""

    key: str
    directory: Path

    @property
    def content(self) -> Path:
        return self.directory / "entry"

    @property
    def state(self) -> Path:
        return self.directory / "state"

    def discard(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


class Hold:
    """A process's use of a cache entry: a shared lock that eviction respects, until closed."""

    def __init__(self, handle: IO[bytes]) -> None:
        self._handle = handle

    def close(self) -> None:
        self._handle.close()


class Cache:
    """The cache rooted at ``root``; ``max_bytes`` bounds it after each new entry (least
    recently used entries that no process holds go first), None leaves it unbounded."""

    def __init__(self, root: Path, max_bytes: int | None = None) -> None:
        self.root = root
        self.max_bytes = max_bytes

    def hold(self, digest: str) -> Hold:
        """Use ``digest`` until the hold closes; waits while the entry is being evicted."""
        handle = _lock(self._lock_file(digest, "use"), fcntl.LOCK_SH)
        assert handle is not None  # a blocking lock always comes
        return Hold(handle)

    def lookup(self, digest: str) -> Path | None:
        """The artifact stored under ``digest``, marked as used now; None if absent."""
        entry = self.root / "entries" / digest
        try:
            name = json.loads((entry / ENTRY_FILE).read_bytes())["name"]
        except (OSError, ValueError, KeyError):
            return None
        with contextlib.suppress(OSError):
            os.utime(entry / ENTRY_FILE)
        return Path(entry / name)

    @contextlib.contextmanager
    def fetching(self, key: str) -> Iterator[Staging]:
        """The staging area of ``key``, held exclusively: a second fetch of the same key waits
        here, then finds the entry installed."""
        handle = _lock(self._lock_file(key, "fetch"), fcntl.LOCK_EX)
        try:
            staging = Staging(key, self.root / "partial" / key)
            staging.state.mkdir(parents=True, exist_ok=True)
            yield staging
        finally:
            if not any(p.is_file() for p in staging.directory.rglob("*")):
                shutil.rmtree(staging.directory, ignore_errors=True)  # nothing worth resuming
            if handle is not None:
                handle.close()

    def install(self, staging: Staging, digest: str, uri: str) -> Path:
        """Move the verified ``staging.content`` into the cache as ``digest``; the caller holds
        ``digest``. An entry that appeared meanwhile (an unpinned fetch of the same content)
        wins, and the staged copy is dropped."""
        (name,) = [p.name for p in staging.content.iterdir()]
        size = _size_of(staging.content / name)
        record = {"name": name, "size": size, "uri": uri}
        (staging.content / ENTRY_FILE).write_text(json.dumps(record))
        target = self._part("entries") / digest
        with contextlib.suppress(FileExistsError, OSError):
            if not target.exists():
                staging.content.rename(target)
        staging.discard()
        found = self.lookup(digest)
        if found is None:
            raise ArtifactError(f"cache entry {digest} vanished while installing {uri}")
        self.prune(self.max_bytes)
        return found

    def remember(self, reference: str, digest: str) -> None:
        """That the immutable ``reference`` (a key) names the content of ``digest``."""
        found = self._part("references") / reference
        staged = found.with_name(f".{reference}.{uuid.uuid4().hex}")
        staged.write_text(digest)
        staged.rename(found)

    def recall(self, reference: str) -> str | None:
        """The digest remembered for ``reference``, while its entry is in the cache."""
        try:
            digest = (self._part("references") / reference).read_text().strip()
        except OSError:
            return None
        return digest if self.lookup(digest) is not None else None

    def entries(self) -> list[Entry]:
        found = []
        for entry in sorted(self._part("entries").iterdir()):
            record = entry / ENTRY_FILE
            try:
                meta = json.loads(record.read_bytes())
                used = record.stat().st_mtime
            except (OSError, ValueError):
                continue  # being evicted
            found.append(Entry(entry.name, entry / meta["name"], meta["size"], meta["uri"], used))
        return found

    def in_use(self, digest: str) -> bool:
        handle = _lock(self._lock_file(digest, "use"), fcntl.LOCK_EX | fcntl.LOCK_NB)
        if handle is None:
            return True
        handle.close()
        return False

    def prune(self, max_bytes: int | None) -> list[Entry]:
        """Evict least recently used entries no process holds until the cache holds at most
        ``max_bytes`` (0: every unused entry; None: nothing); the evicted entries."""
        self._empty_trash()
        if max_bytes is None:
            return []
        entries = sorted(self.entries(), key=lambda e: e.last_used)
        total = sum(e.size for e in entries)
        evicted = []
        for entry in entries:
            if total <= max_bytes:
                break
            if self._evict(entry.digest):
                evicted.append(entry)
                total -= entry.size
        return evicted

    def prune_partial(self) -> list[str]:
        """Drop interrupted fetches nobody is resuming; the keys dropped."""
        dropped = []
        for staging in sorted(self._part("partial").iterdir()):
            handle = _lock(self._lock_file(staging.name, "fetch"), fcntl.LOCK_EX | fcntl.LOCK_NB)
            if handle is None:
                continue
            with handle:
                shutil.rmtree(staging, ignore_errors=True)
            dropped.append(staging.name)
        return dropped

    def _evict(self, digest: str) -> bool:
        handle = _lock(self._lock_file(digest, "use"), fcntl.LOCK_EX | fcntl.LOCK_NB)
        if handle is None:
            return False  # a replica uses it
        with handle:
            doomed = self._part("trash") / f"{digest}-{uuid.uuid4().hex}"
            try:
                (self.root / "entries" / digest).rename(doomed)
            except FileNotFoundError:
                return False
        shutil.rmtree(doomed, ignore_errors=True)
        return True

    def _empty_trash(self) -> None:
        for doomed in self._part("trash").iterdir():
            shutil.rmtree(doomed, ignore_errors=True)

    def _lock_file(self, key: str, kind: str) -> Path:
        return self._part("locks") / f"{key}.{kind}"

    def _part(self, name: str) -> Path:
        """A directory of the cache, made on first use: a replica serving a local file never
        creates a cache."""
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        return path


def _lock(path: Path, operation: int) -> IO[bytes] | None:
    """``path`` opened and flocked; None if ``LOCK_NB`` and someone else holds it."""
    handle = path.open("ab")
    try:
        fcntl.flock(handle.fileno(), operation)
    except BlockingIOError:
        handle.close()
        return None
    except BaseException:
        handle.close()
        raise
    return handle


def _size_of(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
