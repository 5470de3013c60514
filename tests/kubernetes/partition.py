"""A network partition between one client and the API server, with no privileges: the client's
kubeconfig points at a TCP relay on loopback, and ``cut()`` makes the relay behave as a firewall
rule that rejects the traffic (every open connection reset, every new one reset at once) until
``heal()``. The rest of the control plane (controllers, kwok's node heartbeats) keeps talking
to the API server directly, so only that one client is cut off.

    with Relay(("127.0.0.1", plane.port)) as relay:
        kubeconfig = relay.kubeconfig(plane.kubeconfig_of_the_client, tmp_path / "cut")
        relay.cut(); ...; relay.heal()
"""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import threading
from pathlib import Path
from types import TracebackType
from typing import Self

CHUNK = 65536


class Relay:
    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._cut = False
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self._accepting.start()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def kubeconfig(self, original: Path, path: Path) -> Path:
        """``original`` (a kubeconfig of the API server) pointed at the relay instead."""
        config = json.loads(original.read_text())
        for cluster in config["clusters"]:
            cluster["cluster"]["server"] = f"https://127.0.0.1:{self.port}"
        path.write_text(json.dumps(config))
        return path

    def cut(self) -> None:
        with self._lock:
            self._cut = True
            for sock in list(self._open):
                _reset(sock)
            self._open.clear()

    def heal(self) -> None:
        with self._lock:
            self._cut = False

    def close(self) -> None:
        self.cut()
        self._listener.close()
        self._accepting.join(timeout=5)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            with self._lock:
                if self._cut:
                    _reset(client)
                    continue
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                _reset(client)
                continue
            server.settimeout(None)
            with self._lock:
                self._open |= {client, server}
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(CHUNK):
                sink.sendall(data)
        for sock in (source, sink):  # one side is done: so is the other
            with self._lock:
                self._open.discard(sock)
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


def _reset(sock: socket.socket) -> None:
    """Close with an RST, as a rejecting firewall answers, rather than an orderly FIN."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.shutdown(socket.SHUT_RD)  # wakes the relay's reader, sends nothing
    sock.close()
