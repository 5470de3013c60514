"""Large objects fetched in parallel ranged parts, resumable after the process is killed.

Each file is cut into parts of ``Transfer.part_size``; a pool of threads fetches them, each part
written in place (``pwrite`` at its offset) into the file, then recorded as finished in a journal
beside it. A restarted fetch reads the journal and fetches only the parts not recorded. The
journal's first line names the object (its ETag and size, and the part size), so a changed object
or different parts start over instead of mixing two versions. A transient failure
(one whose error is not ``permanent``) retries that part alone, with exponential
backoff; a permanent one stops every part. Whoever calls this verifies the digest afterwards, so
a part gone wrong can never be served.

The S3 source (``s3.py``) is the user; a store is reached through a :class:`ReadRange`.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from modelplane.artifacts.progress import Progress
from modelplane.errors import ArtifactError, ArtifactUnreachableError, ModelplaneError

MiB = 1 << 20


class ReadRange(Protocol):
    """Fetch bytes ``start``..``end`` (inclusive) of one object, handing them to ``sink`` as they
    arrive; raise a retryable error for what another try may fix."""

    def __call__(self, start: int, end: int, sink: Callable[[bytes], None]) -> None: ...


@dataclass(frozen=True)
class Transfer:
    """How a download is cut and retried."""

    part_size: int = 16 * MiB
    workers: int = 8
    attempts: int = 4  # tries per part
    first_backoff: float = 0.25  # seconds before the second try; doubles each time
    max_backoff: float = 8.0


@dataclass(frozen=True)
class FileJob:
    """One file to fill: ``size`` bytes of the object behind ``read`` into ``target``."""

    read: ReadRange
    size: int
    target: Path
    journal: Path  # finished parts, kept across restarts
    identity: str  # what the object is (ETag and size): a different one starts over
    uri: str  # how errors name it


@dataclass(frozen=True)
class _Part:
    job: FileJob
    start: int
    end: int  # inclusive


class _StoppedError(Exception):
    """Another part failed: this one stops early."""


def download(jobs: list[FileJob], transfer: Transfer) -> int:
    """Fill every job's target, fetching in parallel only the parts no earlier run finished;
    the bytes received."""
    journals = {job.target: _Journal(job, transfer) for job in jobs}
    parts = [part for journal in journals.values() for part in journal.missing()]
    stop = threading.Event()
    what = jobs[0].uri if len(jobs) == 1 else f"{len(jobs)} files"
    progress = Progress(what, sum(p.end + 1 - p.start for p in parts))
    try:
        with (
            progress,
            ThreadPoolExecutor(max(1, transfer.workers), thread_name_prefix="part") as pool,
        ):
            futures = [
                pool.submit(_fetch_part, part, journals[part.job.target], transfer, stop, progress)
                for part in parts
            ]
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            failed = [f for f in done if f.exception() is not None]
            if failed:
                stop.set()
                wait(futures)
                error = failed[0].exception()
                assert error is not None
                raise error
    finally:
        for journal in journals.values():
            journal.close()
    return progress.received


class _Journal:
    """A file being filled: its descriptor and its record of finished parts."""

    def __init__(self, job: FileJob, transfer: Transfer) -> None:
        self.job = job
        self.part_size = transfer.part_size
        header = f"{job.identity} {transfer.part_size}\n"
        finished = _read_journal(job.journal, header)
        if not finished:  # a new object, or other parts: start over
            job.journal.write_text(header)
        job.target.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(job.target, os.O_RDWR | os.O_CREAT, 0o644)
        if os.fstat(self.fd).st_size != job.size:
            os.ftruncate(self.fd, job.size)
        self.finished = finished
        self._log = job.journal.open("a")
        self._lock = threading.Lock()

    def missing(self) -> list[_Part]:
        size, step = self.job.size, self.part_size
        return [
            _Part(self.job, start, min(start + step, size) - 1)
            for start in range(0, size, step)
            if start not in self.finished
        ]

    def finish(self, part: _Part) -> None:
        with self._lock:
            self._log.write(f"{part.start}\n")
            self._log.flush()

    def close(self) -> None:
        os.close(self.fd)
        self._log.close()


def _read_journal(journal: Path, header: str) -> set[int]:
    try:
        lines = journal.read_text().splitlines(keepends=True)
    except OSError:
        return set()
    if not lines or lines[0] != header:
        return set()
    # A line cut short by a kill has no newline: that part is fetched again.
    return {int(line) for line in lines[1:] if line.endswith("\n") and line.strip().isdigit()}


def _fetch_part(
    part: _Part, journal: _Journal, transfer: Transfer, stop: threading.Event, progress: Progress
) -> None:
    delay = transfer.first_backoff
    for attempt in range(1, transfer.attempts + 1):
        try:
            _fetch_once(part, journal, stop, progress)
        except _StoppedError:
            return
        except ModelplaneError as exc:
            if exc.permanent or attempt == transfer.attempts:
                raise
            if stop.wait(delay):
                return
            delay = min(delay * 2, transfer.max_backoff)
        else:
            journal.finish(part)
            return
    raise AssertionError("unreachable: the last attempt raises or returns")


def _fetch_once(part: _Part, journal: _Journal, stop: threading.Event, progress: Progress) -> None:
    offset = part.start

    def sink(chunk: bytes) -> None:
        nonlocal offset
        if stop.is_set():
            raise _StoppedError
        if offset + len(chunk) > part.end + 1:
            raise ArtifactError(f"{part.job.uri}: the store sent more bytes than asked for")
        os.pwrite(journal.fd, chunk, offset)
        offset += len(chunk)
        progress.add(len(chunk))

    part.job.read(part.start, part.end, sink)
    if offset != part.end + 1:
        raise ArtifactUnreachableError(
            f"{part.job.uri}: the connection ended after {offset - part.start} of "
            f"{part.end + 1 - part.start} bytes of a part"
        )
