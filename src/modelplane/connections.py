"""HTTP/1.1 connections as the data plane's servers hold them: uvicorn's httptools protocol with
the bounds it lacks on its own.

uvicorn parses with httptools but puts no limit on a request head (a 2 MiB header is read and
served), never times out a connection that has not sent a whole request (one that opens and
says nothing, or sends half a head or half a body, is held for ever), and keeps a connection
open after answering an ``Expect: 100-continue`` request whose body it never asked for, though
the client will not send it; nor does it bound a client that stops reading an answer (a stream
it stopped reading would hold its generation for ever). :class:`DataPlaneProtocol` adds those
bounds; the runtime's server and the gateway's (``cli``) pass it to uvicorn as ``http``, with
:data:`KEEP_ALIVE_SECONDS`.
What a client sees past each bound is listed in ``docs/runtime.md`` ("HTTP/1.1 behaviour").
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from uvicorn._types import ASGI3Application, ASGIReceiveCallable, ASGISendCallable, Scope
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

HEAD_LIMIT_BYTES = 64 * 1024  # request line and headers; more is refused with 431
HEAD_SECONDS = 10.0  # a request head must arrive whole within this, from its first byte
BODY_IDLE_SECONDS = 10.0  # the longest pause between two parts of a request body
KEEP_ALIVE_SECONDS = 5  # an idle connection is closed after this (the gateway's pool counts on it)
# A client that takes nothing of an answer for this long, once the buffers are full, is cut off:
# a stream it stopped reading would otherwise hold its generation (and the replica's slot).
WRITE_STALL_SECONDS = 30.0
LINGER_SECONDS = 2.0  # after a refusal, what the client still sends is read and dropped this long
_HEAD_TOO_LARGE = f"request head exceeds {HEAD_LIMIT_BYTES} bytes (request line and headers)"


def _refusal(message: str) -> tuple[list[tuple[bytes, bytes]], bytes]:
    body = orjson.dumps({"error": message})
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    return headers, body


def _raw_refusal(status: int, reason: str, message: str) -> bytes:
    headers, body = _refusal(message)
    head = [f"HTTP/1.1 {status} {reason}\r\n".encode()]
    head += [name + b": " + value + b"\r\n" for name, value in headers]
    return b"".join(head) + b"\r\n" + body


async def _head_too_large(
    scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
) -> None:
    headers, body = _refusal(_HEAD_TOO_LARGE)
    await send({"type": "http.response.start", "status": 431, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def _closing_if_answered_early(app: ASGI3Application) -> ASGI3Application:
    """``app`` for a request that expects ``100 Continue``: if it answers before asking for the
    body, the client will not send the body, so the connection cannot carry another request."""

    async def expecting(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> Any:
        asked = False

        async def receiving() -> Any:
            nonlocal asked
            asked = True
            return await receive()

        async def sending(message: Any) -> None:
            if message["type"] == "http.response.start" and not asked:
                message = {**message, "headers": [*message.get("headers", []), _CLOSE]}
            await send(message)

        return await app(scope, receiving, sending)

    return expecting


_CLOSE = (b"connection", b"close")


class DataPlaneProtocol(HttpToolsProtocol):
    """One client connection. Beside uvicorn's own handling: a bounded head, a deadline for the
    head and an idle bound for the body, and an idle bound before the first request too."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = False
        self._head_bytes = 0  # of the request being parsed, as far as its head has come
        self._reading: asyncio.TimerHandle | None = None  # the head's deadline, the body's bound
        self._dropping = False  # refused: what still comes is read and dropped until closed
        self._stalled: asyncio.TimerHandle | None = None  # the bound on a client not reading

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.timeout_keep_alive_task = self.loop.call_later(
            self.timeout_keep_alive, self.timeout_keep_alive_handler
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_reading_timer()
        self._stop_stall_timer()
        super().connection_lost(exc)

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._stalled is None:
            self._stalled = self.loop.call_later(WRITE_STALL_SECONDS, self._write_stalled)

    def resume_writing(self) -> None:
        self._stop_stall_timer()
        super().resume_writing()

    def _stop_stall_timer(self) -> None:
        if self._stalled is not None:
            self._stalled.cancel()
            self._stalled = None

    def _write_stalled(self) -> None:
        """Nothing written for the bound: drop what the client did not take and close, which
        its app sees as a client that left (a stream's generation stops)."""
        self._stalled = None
        self.transport.abort()

    def data_received(self, data: bytes) -> None:
        if self._dropping:
            return
        continuing = self._in_head
        super().data_received(data)
        if continuing and self._in_head and not self.transport.is_closing():
            # The whole read was head: bound it before httptools buffers a header without end.
            self._head_bytes += len(data)
            if self._head_bytes > HEAD_LIMIT_BYTES:
                self._refuse_raw(431, "Request Header Fields Too Large", _HEAD_TOO_LARGE)

    # Parser callbacks
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head, self._head_bytes = True, 0
        self._arm(HEAD_SECONDS, self._head_late)

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        self._head_bytes += len(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_bytes += len(name) + len(value) + 4
        if self._head_bytes <= HEAD_LIMIT_BYTES:  # past it, the request is refused: keep none
            super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._stop_reading_timer()
        app = self.app
        if self._head_bytes > HEAD_LIMIT_BYTES:
            self.app = _head_too_large
        elif self.expect_100_continue:
            self.app = _closing_if_answered_early(app)
        try:
            super().on_headers_complete()
        finally:
            self.app = app
        self._arm(BODY_IDLE_SECONDS, self._body_late)

    def on_body(self, body: bytes) -> None:
        super().on_body(body)
        self._arm(BODY_IDLE_SECONDS, self._body_late)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._stop_reading_timer()

    # Bounds on reading a request
    def _arm(self, seconds: float, late: Any) -> None:
        self._stop_reading_timer()
        self._reading = self.loop.call_later(seconds, late, seconds)

    def _stop_reading_timer(self) -> None:
        if self._reading is not None:
            self._reading.cancel()
            self._reading = None

    def _head_late(self, seconds: float) -> None:
        cycle = self.cycle
        if self.flow.read_paused or (cycle is not None and not cycle.response_complete):
            self._arm(seconds, self._head_late)  # the client may wait for an earlier answer
            return
        self._refuse_raw(408, "Request Timeout", f"request head not received within {seconds:g} s")

    def _body_late(self, seconds: float) -> None:
        if self.flow.read_paused or self.cycle.waiting_for_100_continue:
            self._arm(seconds, self._body_late)  # the app has not taken the body, or asked for it
            return
        message = f"request body stalled: nothing received for {seconds:g} s"
        self._refuse_raw(408, "Request Timeout", message, reading_body=True)

    def _refuse_raw(
        self, status: int, reason: str, message: str, reading_body: bool = False
    ) -> None:
        """Answer outside any app and close: while a head is read, if every earlier request was
        answered; while a body is read, if its app has not begun to answer (that app then sees
        the client gone)."""
        self._stop_reading_timer()
        cycle = self.cycle
        if cycle is None or cycle.response_complete:
            self.transport.write(_raw_refusal(status, reason, message))
        elif reading_body:
            if not cycle.response_started:
                self.transport.write(_raw_refusal(status, reason, message))
            cycle.disconnected = True
            cycle.message_event.set()
        self._linger()

    def _linger(self) -> None:
        """Close after a refusal without losing it: closing a socket with unread bytes resets
        the connection, and a client still sending would get the reset instead of the answer.
        So the write side is shut, and what still comes is dropped for a while (nginx's
        lingering close)."""
        self._dropping = True
        self.flow.resume_reading()
        if not self.transport.can_write_eof():
            self.transport.close()
            return
        self.transport.write_eof()
        self.loop.call_later(LINGER_SECONDS, self.transport.close)
