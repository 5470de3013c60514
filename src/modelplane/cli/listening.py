"""The listening sockets of a server the CLI starts, bound and listening before anything else
starts: a port in use (the commonest first-run problem) is then one clear error naming the
option, rather than a server failing mid-start with a traceback."""

from __future__ import annotations

import contextlib
import socket

from modelplane.cli.errors import EXIT_USAGE, CliError


def listen(host: str, port: int, option: str, backlog: int) -> list[socket.socket]:
    """Listening sockets on every address ``host`` resolves to (every interface for ``""``),
    as asyncio would make them; ``option`` names the port in errors."""
    try:
        found = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except OSError as exc:
        raise CliError(f"--host {host}: {exc.strerror or exc}", exit_code=EXIT_USAGE) from exc
    bound: list[socket.socket] = []
    for family, kind, proto, _, address in dict.fromkeys(found):
        try:
            sock = socket.socket(family, kind, proto)
        except OSError:  # a family this machine lacks (IPv6 turned off): skipped, as asyncio does
            continue
        bound.append(sock)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(backlog)  # now: two bound sockets may share a port until one listens
        except OSError as exc:
            close(bound)
            raise CliError(
                f"{option} {port}: cannot listen on {address[0]} port {port}: "
                f"{exc.strerror or exc}",
                hint=f"stop what uses it, or choose another port with {option}",
            ) from exc
    if not bound:
        raise CliError(f"--host {host}: no address to listen on", exit_code=EXIT_USAGE)
    return bound


def close(sockets: list[socket.socket]) -> None:
    for sock in sockets:
        with contextlib.suppress(OSError):
            sock.close()
