"""A TCP proxy on loopback that counts what the server sends, and can slow it down: how the tests
see from outside how many bytes a fetch really transferred, and catch a fetch mid-way."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from dataclasses import dataclass, field

CHUNK = 64 * 1024


@dataclass
class CountingProxy:
    """Forwards 127.0.0.1:``port`` to ``target``; ``rate``: bytes per second from the server
    (None: as fast as it comes)."""

    target: tuple[str, int]
    rate: float | None = None
    received: int = 0  # bytes from the server, to the clients
    ranged_gets: int = 0  # requests that asked for a byte range
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._sockets: list[socket.socket] = []
        self._stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def reset(self) -> None:
        """Counting starts afresh, on new connections only: what an earlier (killed) client's
        connections still carry is not counted."""
        self._close_connections()
        with self._lock:
            self.received = self.ranged_gets = 0

    def stop(self) -> None:
        self._stopped = True
        self._listener.close()
        self._close_connections()

    def _close_connections(self) -> None:
        with self._lock:
            doomed, self._sockets = self._sockets, []
        for sock in doomed:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self) -> None:
        while not self._stopped:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, True), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, downstream: bool) -> None:
        started, sent = time.monotonic(), 0
        try:
            while data := source.recv(CHUNK):
                if downstream:
                    sent += len(data)
                    self._throttle(started, sent)
                sink.sendall(data)
                with self._lock:
                    if sink not in self._sockets:
                        return  # a connection from before a reset
                    if downstream:
                        self.received += len(data)
                    else:
                        self.ranged_gets += data.lower().count(b"\r\nrange: bytes=")
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def _throttle(self, started: float, sent: int) -> None:
        if self.rate is not None:
            ahead = sent / self.rate - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)  # the rate limit itself, not a wait for something
