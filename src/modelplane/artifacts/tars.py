"""An artifact (a file or a directory) as an uncompressed tar stream, and back: how the node
cache hands artifacts to the pods of its node. Streams are produced and consumed in bounded
chunks, never held whole, and unpacked with the standard library's ``data`` filter (no absolute
or escaping names, no links out, no devices) within :class:`Limits`."""

from __future__ import annotations

import io
import queue
import tarfile
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

from modelplane.artifacts.paths import Limits
from modelplane.errors import ArtifactError, UnsafeArtifactError

CHUNK = 1 << 20
_END = b""


def tar_chunks(path: Path) -> Iterator[bytes]:
    """``path`` (named by its last segment) as tar, in chunks of about a MiB."""
    chunks: queue.Queue[bytes | BaseException] = queue.Queue(maxsize=16)
    stopped = threading.Event()

    def produce() -> None:
        try:
            writer = _QueueWriter(chunks, stopped)
            with tarfile.open(fileobj=writer, mode="w|") as tar:
                tar.add(path, arcname=path.name)
            writer.close()  # tarfile leaves a stream it was given open, its tail unsent
        except BaseException as exc:  # handed to the consumer, which raises it
            chunks.put(exc)
            return
        chunks.put(_END)

    threading.Thread(target=produce, name="tar", daemon=True).start()
    try:
        while True:
            chunk = chunks.get()
            if isinstance(chunk, BaseException):
                raise chunk
            if chunk == _END:
                return
            yield chunk
    finally:
        stopped.set()  # the reader went away: the producer stops at its next write


def untar(chunks: Iterable[bytes], target: Path, limits: Limits, uri: str) -> Path:
    """Unpack the stream into ``target`` (a directory); the one artifact it holds."""
    target.mkdir(parents=True, exist_ok=True)
    files = size = 0
    try:
        with tarfile.open(fileobj=_IterReader(iter(chunks)), mode="r|") as tar:
            for member in tar:
                if member.isfile():
                    files, size = files + 1, size + member.size
                    limits.check(files, size, uri)
                tar.extract(member, target, filter="data")
    except tarfile.FilterError as exc:
        raise UnsafeArtifactError(f"artifact {uri}: {exc}") from exc
    except tarfile.TarError as exc:
        raise ArtifactError(f"artifact {uri}: not a whole tar stream ({exc})") from exc
    found = list(target.iterdir())
    if len(found) != 1:
        raise UnsafeArtifactError(f"artifact {uri}: expected one artifact, found {len(found)}")
    return found[0]


class _QueueWriter(io.RawIOBase):
    def __init__(self, chunks: queue.Queue[bytes | BaseException], stopped: threading.Event):
        self._chunks, self._stopped = chunks, stopped
        self._pending = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self._pending += data
        if len(self._pending) >= CHUNK:
            self._send()
        return len(data)

    def close(self) -> None:
        if self._pending and not self.closed:
            self._send()
        super().close()

    def _send(self) -> None:
        while True:
            if self._stopped.is_set():
                raise BrokenPipeError("the reader went away")
            try:
                self._chunks.put(bytes(self._pending), timeout=1)
            except queue.Full:
                continue
            self._pending.clear()
            return


class _IterReader(io.RawIOBase):
    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks, self._buffer = chunks, b""

    def readable(self) -> bool:
        return True

    def readinto(self, into: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._buffer:
            try:
                self._buffer = next(self._chunks)
            except StopIteration:
                return 0
        count = min(len(into), len(self._buffer))
        into[:count] = self._buffer[:count]
        self._buffer = self._buffer[count:]
        return count
