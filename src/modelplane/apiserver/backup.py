"""``GET /backup``: a consistent backup of the embedded platform's state, taken while it serves
and streamed to the caller (``modelplane backup``). Admin on every namespace (``access.py``'s
rule for a path it does not name): the archive holds every API key's hash and every git
source's webhook secret. What goes in it is the backend's business (``write``)."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import IO, BinaryIO

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

BackupWriter = Callable[[BinaryIO], object]
CHUNK = 1 << 20


def backup_route(write: BackupWriter, before: Callable[[], None] = lambda: None) -> Route:
    """``before``: called on the loop first, to write what is kept in memory (usage)."""

    async def backup(_: Request) -> Response:
        before()
        spooled = tempfile.TemporaryFile()  # noqa: SIM115 (closed once streamed)
        try:
            await asyncio.to_thread(write, spooled)  # off the loop: the copy reads the database
        except BaseException:
            spooled.close()
            raise
        spooled.seek(0)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        disposition = f'attachment; filename="modelplane-backup-{stamp}.tar.gz"'
        return StreamingResponse(
            _chunks(spooled), media_type="application/gzip",
            headers={"Content-Disposition": disposition},
        )  # fmt: skip

    return Route("/backup", backup, methods=["GET"])


def _chunks(spooled: IO[bytes]) -> Iterator[bytes]:
    with spooled:
        while chunk := spooled.read(CHUNK):
            yield chunk
