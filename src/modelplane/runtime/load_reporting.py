"""The engine's load, told to the gateway: as a header on every chat and completion answer, and
at ``GET /engine/load`` for a gateway that has not heard from this replica lately
(``api/engine_load.py`` holds the format). ``server.py`` wraps the runtime's app in it when the
model generates through the scheduler; an engine's own server (``external.py``) reports nothing,
and the gateway balances it by outstanding requests.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from modelplane.api.engine_load import HEADER, LOAD_PATH, EngineLoad

REPORTED = frozenset({"/v1/chat/completions", "/v1/completions"})
_HEADER = HEADER.encode()


class LoadReporting:
    def __init__(self, app: ASGIApp, load: Callable[[], EngineLoad | None]) -> None:
        self.app, self.load = app, load

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path") if scope["type"] == "http" else None
        if path == LOAD_PATH and scope["method"] == "GET":
            await self._answer(send)
        elif path in REPORTED:
            await self.app(scope, receive, self._stamping(send))
        else:
            await self.app(scope, receive, send)

    def _stamping(self, send: Send) -> Send:
        """``send``, with the load added to the answer's head as it goes out (for a stream:
        once its first token is made)."""

        async def stamped(message: Message) -> None:
            if message["type"] == "http.response.start":
                load = self.load()
                if load is not None:
                    headers = [*message.get("headers", ()), (_HEADER, load.encode().encode())]
                    message = {**message, "headers": headers}
            await send(message)

        return stamped

    async def _answer(self, send: Send) -> None:
        load = self.load()
        if load is None:  # still loading, or failed: nothing to tell yet
            await _send(send, 503, [], b"the model is not serving yet\n")
            return
        value = load.encode().encode()
        await _send(send, 200, [(_HEADER, value)], value + b"\n")


async def _send(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    head = [(b"content-type", b"text/plain; charset=utf-8"), *headers]
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body})
