"""The gateway's client to replicas: pooled keep-alive HTTP/1.1 connections, parsed by httptools.

A general-purpose client spends most of a proxied request's CPU on machinery a gateway does not
need (cookie jars, redirects, tracing hooks, header normalisation). This one writes a prebuilt
request head and parses the response with the same C parser the server side uses. Replicas are
modelplane runtimes on a trusted network, answering with ``Content-Length`` bodies or, for
streams, chunked ones relayed as they come.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import cast
from urllib.parse import urlsplit

import httptools

from modelplane.api.adapters import ADAPTERS_HEADER
from modelplane.api.engine_load import HEADER as ENGINE_LOAD_HEADER
from modelplane.connections import KEEP_ALIVE_SECONDS

MAX_CONNECTIONS_PER_REPLICA = 256  # more requests wait for a connection, as with nginx's pools
IDLE_SECONDS = KEEP_ALIVE_SECONDS - 1.0  # below the runtime's: never reuse a closing one
# What replicas tell beside the body that is kept: its type, when to come back after a 429
# (``attempts.RETURNED``), what they hold of their LoRA adapters, and their engine's load
# (``engine_polling.observe``).
_KEEP = frozenset({b"content-type", b"inference-header-content-length", b"retry-after",
                   ADAPTERS_HEADER.encode(), ENGINE_LOAD_HEADER.encode()})  # fmt: skip


def _request(
    host: str, port: int, method: str, path: str, headers: dict[str, str], body: bytes
) -> bytes:
    head = [f"{method} {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Length: {len(body)}\r\n"]
    head += [f"{name}: {value}\r\n" for name, value in headers.items()]
    return "".join(head).encode("latin-1") + b"\r\n" + body


class UpstreamError(Exception):
    """The replica could not be reached, or closed the connection before a whole response."""


@dataclass
class Reply:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[Reply] | None = None
        # Streaming: the waiter resolves at the end of the head, the body goes through here.
        self._body_queue: asyncio.Queue[bytes | Exception | None] | None = None
        self._reply = Reply(0)
        self._chunks: list[bytes] = []
        self._header: bytes = b""
        self.reusable = False
        self.idle_since = time.monotonic()

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(UpstreamError(f"malformed response from replica: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.reusable = False
        self._fail(UpstreamError(f"replica closed the connection: {exc or 'EOF'}"))

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        lowered = name.lower()
        if lowered in _KEEP:
            self._reply.headers[lowered.decode()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self._reply.status = self._parser.get_status_code()
        if self._body_queue is not None:
            self._resolve()

    def on_body(self, body: bytes) -> None:
        if self._body_queue is not None:
            self._body_queue.put_nowait(body)
        else:
            self._chunks.append(body)

    def on_message_complete(self) -> None:
        self.reusable = self._parser.should_keep_alive()
        if self._body_queue is not None:
            self._body_queue.put_nowait(None)
            return
        self._reply.body = b"".join(self._chunks)
        self._resolve()

    def _resolve(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(self._reply)

    def _fail(self, error: Exception) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)
        elif self._body_queue is not None:
            self._body_queue.put_nowait(error)

    @property
    def usable(self) -> bool:
        fresh = time.monotonic() - self.idle_since < IDLE_SECONDS
        return (
            self.reusable
            and fresh
            and self.transport is not None
            and not self.transport.is_closing()
        )

    async def exchange(self, request: bytes, streaming: bool = False) -> Reply:
        """Send ``request``; the whole reply, or with ``streaming`` its head (then read
        :meth:`body`)."""
        assert self.transport is not None
        self._reply, self._chunks = Reply(0), []
        self.reusable = False
        self._body_queue = asyncio.Queue() if streaming else None
        self._waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        try:
            return await self._waiter
        finally:
            self._waiter = None
            self.idle_since = time.monotonic()

    async def body(self, idle_timeout: float) -> AsyncIterator[bytes]:
        """A streamed reply's body, chunk by chunk as the replica sends it."""
        assert self._body_queue is not None
        while True:
            item = await asyncio.wait_for(self._body_queue.get(), idle_timeout)
            if item is None:
                self.idle_since = time.monotonic()
                return
            if isinstance(item, Exception):
                raise item
            yield item

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


@dataclass
class StreamedReply:
    """A reply whose body is relayed as it arrives; :meth:`UpstreamPool.stream` closes it."""

    status: int
    headers: dict[str, str]
    chunks: AsyncIterator[bytes]


class UpstreamPool:
    def __init__(
        self,
        timeout: float,
        connect_timeout: float = 5.0,
        per_replica: int = MAX_CONNECTIONS_PER_REPLICA,
    ) -> None:
        self.timeout, self.connect_timeout, self.per_replica = timeout, connect_timeout, per_replica
        self._idle: dict[str, list[_Connection]] = {}
        self._slots: dict[str, asyncio.Semaphore] = {}
        self._addresses: dict[str, tuple[str, int]] = {}

    async def request(
        self, base: str, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> Reply:
        host, port = self._address(base)
        request = _request(host, port, method, path, headers, body)
        async with self._slots_of(base):
            reply, connection = await self._send(base, host, port, request)
            self._release(base, connection)
            return reply

    @contextlib.asynccontextmanager
    async def stream(
        self, base: str, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> AsyncIterator[StreamedReply]:
        """The reply's head at once and its body as it comes (server-sent events). The connection
        goes back to the pool only if the body was read to its end."""
        host, port = self._address(base)
        request = _request(host, port, method, path, headers, body)
        async with self._slots_of(base):
            reply, connection = await self._send(base, host, port, request, streaming=True)
            try:
                yield StreamedReply(
                    reply.status, reply.headers, connection.body(idle_timeout=self.timeout)
                )
            finally:
                self._release(base, connection)

    def _slots_of(self, base: str) -> asyncio.Semaphore:
        slots = self._slots.get(base)
        if slots is None:
            slots = self._slots[base] = asyncio.Semaphore(self.per_replica)
        return slots

    async def _send(
        self, base: str, host: str, port: int, request: bytes, streaming: bool = False
    ) -> tuple[Reply, _Connection]:
        """The reply (or, streaming, its head) and the connection it came on: an idle pooled one
        if there is one, else, or if the replica closed it as we reused it, a fresh one."""
        pooled = self._pooled(base)
        if pooled is not None:
            try:
                return await self._exchange(pooled, request, streaming), pooled
            except UpstreamError:
                pass
        connection = await self._connect(host, port)
        return await self._exchange(connection, request, streaming), connection

    async def _exchange(self, connection: _Connection, request: bytes, streaming: bool) -> Reply:
        try:
            return await asyncio.wait_for(connection.exchange(request, streaming), self.timeout)
        except BaseException:
            connection.close()
            raise

    def _release(self, base: str, connection: _Connection) -> None:
        """Back to the pool if the reply was read whole and the connection may be reused."""
        if connection.usable:
            self._idle.setdefault(base, []).append(connection)
        else:
            connection.close()

    def _pooled(self, base: str) -> _Connection | None:
        idle = self._idle.get(base)
        while idle:
            connection = idle.pop()
            if connection.usable:
                return connection
            connection.close()
        return None

    async def _connect(self, host: str, port: int) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            _, protocol = await asyncio.wait_for(
                loop.create_connection(_Connection, host, port), self.connect_timeout
            )
        except (OSError, TimeoutError) as exc:
            raise UpstreamError(f"cannot connect to replica {host}:{port}: {exc}") from exc
        return protocol

    def _address(self, base: str) -> tuple[str, int]:
        address = self._addresses.get(base)
        if address is None:
            parts = urlsplit(base)
            address = self._addresses[base] = (parts.hostname or "127.0.0.1", parts.port or 80)
        return address

    def forget(self, base: str) -> None:
        self._slots.pop(base, None)
        for connection in self._idle.pop(base, []):
            connection.close()

    async def close(self) -> None:
        for base in list(self._idle):
            self.forget(base)
