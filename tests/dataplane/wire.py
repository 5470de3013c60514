"""HTTP/1.1 by hand: requests written as bytes on a raw socket and responses parsed as they come
(httptools), every read bounded, for the cases a client library hides (pipelining, chunked
bodies with trailers, ``100 Continue``, stalls, leaving halfway)."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httptools
import orjson

READ_SECONDS = 15.0  # no read waits longer: a server that never answers fails the test


@dataclass
class Response:
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)  # lower-cased names
    body: bytes = b""

    def json(self) -> Any:
        return orjson.loads(self.body)


def request(
    method: str,
    path: str,
    body: bytes | None = None,
    headers: Iterable[tuple[str, str]] = (),
    version: str = "1.1",
) -> bytes:
    """A request with a ``Content-Length`` body (unless ``headers`` frame it otherwise)."""
    lines = [
        f"{method} {path} HTTP/{version}",
        "Host: 127.0.0.1",
        *(f"{k}: {v}" for k, v in headers),
    ]
    framed = any(k.lower() in ("content-length", "transfer-encoding") for k, _ in headers)
    if body is not None and not framed:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")


def chunked(body: bytes, sizes: Sequence[int], trailers: Iterable[tuple[str, str]] = ()) -> bytes:
    """``body`` in chunks of ``sizes`` (the rest in one last chunk), then the trailer fields."""
    parts, at = [], 0
    for size in [*sizes, len(body)]:
        piece = body[at : at + size]
        at += len(piece)
        if piece:
            parts.append(b"%x\r\n%s\r\n" % (len(piece), piece))
    trailer = "".join(f"{k}: {v}\r\n" for k, v in trailers).encode("latin-1")
    return b"".join(parts) + b"0\r\n" + trailer + b"\r\n"


class Wire:
    """One client connection to ``127.0.0.1:port``."""

    def __init__(
        self, port: int, timeout: float = READ_SECONDS, receive_buffer: int | None = None
    ) -> None:
        """``receive_buffer``: the socket's, in bytes (set before connecting, so the window the
        server sees is that small)."""
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if receive_buffer is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        self.sock.settimeout(timeout)
        self.sock.connect(("127.0.0.1", port))
        self.timeout = timeout
        self.interim: list[Response] = []  # 1xx answers, in order
        self._done: list[Response] = []
        self._current = Response()
        self._parser = httptools.HttpResponseParser(self)

    def __enter__(self) -> Wire:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def responses(self, count: int = 1) -> list[Response]:
        """The next ``count`` final responses, in the order they came."""
        self._read_until(lambda: len(self._done) >= count, f"{count} responses")
        found, self._done = self._done[:count], self._done[count:]
        return found

    def response(self) -> Response:
        return self.responses(1)[0]

    def interim_or_final(self) -> Response:
        """The next response, a 1xx (kept in ``interim`` too) or a final one."""
        seen = len(self.interim)
        self._read_until(lambda: len(self.interim) > seen or bool(self._done), "a response")
        return self.interim[-1] if len(self.interim) > seen else self._done.pop(0)

    def begun(self, marker: bytes) -> Response:
        """The response being received, once its body so far holds ``marker`` (a stream)."""
        self._read_until(lambda: marker in self._current.body, repr(marker))
        return self._current

    def _read_until(self, done: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + self.timeout
        while not done():
            if time.monotonic() > deadline:
                raise AssertionError(f"no {what} within {self.timeout}s")
            data = self.sock.recv(65536)
            if not data:
                raise AssertionError(f"closed before {what}")
            self._parser.feed_data(data)

    def closed_by_server(self) -> bool:
        """Whether the server closes the connection (end of stream or reset) within the read
        bound; anything it sends first must be a whole response."""
        try:
            while data := self.sock.recv(65536):
                self._parser.feed_data(data)
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False
        return True

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self._current.headers[name.decode().lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self._current.status = self._parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        self._current.body += body

    def on_message_complete(self) -> None:
        done, self._current = self._current, Response()
        (self.interim if 100 <= done.status < 200 else self._done).append(done)
