"""The operator's load board: the LoRA adapters the gateways saw fail, posted with their load
to ``POST /v1/load`` (in process), as the Models' ``AdaptersReady`` condition reads them."""

from __future__ import annotations

import asyncio

import httpx
from starlette.applications import Starlette
from starlette.routing import Route

from modelplane.api.load import LoadReport, ModelLoad
from modelplane.backends.kubernetes.load import LOAD_PATH, STALE_SECONDS, LoadBoard

KEY = "team/chat"


def report(gateway: str, **failed: str) -> bytes:
    load = ModelLoad(failed_adapters=failed)
    body = LoadReport(gateway=gateway, models={KEY: load})
    return body.model_dump_json(by_alias=True, exclude_defaults=True).encode()


def post_all(board: LoadBoard, *reports: bytes) -> None:
    app = Starlette(routes=[Route(LOAD_PATH, board.receive, methods=["POST"])])

    async def send() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://operator") as client:
            for body in reports:
                reply = await client.post(
                    LOAD_PATH, content=body, headers={"content-type": "application/json"}
                )
                assert reply.status_code == 204, reply.text

    asyncio.run(send())


def test_failures_of_every_fresh_gateway_are_merged_and_a_change_requeues_the_model() -> None:
    now = [0.0]
    board = LoadBoard(clock=lambda: now[0])
    queued: list[str] = []
    board.on_adapters = queued.append
    post_all(board, report("gw-b", poet="cannot fetch"), report("gw-a", poet="not a LoRA"))
    assert queued == [KEY, KEY]
    # The same message from the same reports, whichever gateway posted last.
    assert board.failed_adapters(KEY) == {"poet": "cannot fetch"}

    post_all(board, report("gw-a", poet="not a LoRA"), report("gw-b", poet="cannot fetch"))
    assert queued == [KEY, KEY]  # nothing new: no pass, so a converged Model writes nothing

    post_all(board, report("gw-b"))  # fixed on gw-b's replicas
    assert queued == [KEY, KEY, KEY]
    assert board.failed_adapters(KEY) == {"poet": "not a LoRA"}

    now[0] += STALE_SECONDS + 1  # gw-a went silent: what it saw no longer counts
    post_all(board, report("gw-b", pirate="cannot fetch"))
    assert board.failed_adapters(KEY) == {"pirate": "cannot fetch"}
    assert board.failed_adapters("team/other") == {}
