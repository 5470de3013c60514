"""A server of the data path's connections (uvicorn with ``DataPlaneProtocol``) whose one route
streams without end, as a generation would for a client that never takes it: run as
``python -m tests.dataplane.endless PORT``; it prints how its stream ended."""

from __future__ import annotations

import asyncio
import sys

import uvicorn
import uvloop
from starlette.types import Receive, Scope, Send

from modelplane.connections import KEEP_ALIVE_SECONDS, DataPlaneProtocol

CHUNK = b"data: " + b"x" * 16_378 + b"\n\n"  # 16 KiB events


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    gone = asyncio.get_running_loop().create_task(receive())  # the body, then a disconnect
    await gone
    gone = asyncio.get_running_loop().create_task(receive())
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/event-stream")]})  # fmt: skip
    sent = 0
    while not gone.done():
        await send({"type": "http.response.body", "body": CHUNK, "more_body": True})
        sent += len(CHUNK)
    print(f"client gone after {sent} bytes", flush=True)


def main() -> None:
    config = uvicorn.Config(
        app, host="127.0.0.1", port=int(sys.argv[1]), http=DataPlaneProtocol, loop="none",
        timeout_keep_alive=KEEP_ALIVE_SECONDS, log_level="warning", lifespan="off",
    )  # fmt: skip
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(uvicorn.Server(config).serve())


if __name__ == "__main__":
    main()
