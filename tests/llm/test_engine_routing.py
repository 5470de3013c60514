"""Engine-aware balancing (`modelplane up --balancing engine`) with real llama.cpp replicas of the
tiny chat model: each replica reports its engine's load, a conversation keeps landing on the
replica that holds its prompt, and a replica that is full is passed over."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from modelplane.api.engine_load import HEADER, decode
from modelplane.gateway.engine_polling import EnginePolling
from modelplane.gateway.prefix import prompt_blocks
from modelplane.gateway.routing import RoutingTable
from modelplane.gateway.scoring import EngineWeights, pick_by_engine
from modelplane.gateway.upstream import UpstreamPool
from tests.llm.conftest import chat_variant
from tests.platform.conftest import Platform, wait_for
from tests.processes import free_port, scraped

MODEL = "routed"
REVISION = f"{MODEL}-r1"
ONE_SLOT = """\
  generation:
    maxTokens: 3000
    contextLength: 4096
    timeoutSeconds: 60
  runtime:
    parameters: {parallel: "1"}
"""
SERVED = "modelplane_runtime_request_duration_seconds_count"


@pytest.fixture(scope="module")
def platform(llm_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """Three replicas of one slot each behind a gateway balancing on engine state."""
    root = tmp_path_factory.mktemp("engine-routing")
    running = Platform(root / "state", root / "up.log", options=("--balancing", "engine"))
    try:
        manifest = chat_variant(llm_dir, MODEL, ONE_SLOT)
        text = manifest.read_text().replace("minReplicas: 1", "minReplicas: 3")
        manifest.write_text(text.replace("maxReplicas: 2", "maxReplicas: 3"))
        applied = running.cli("apply", "-f", str(manifest))
        assert applied.returncode == 0, applied.stderr

        def all_ready() -> bool:
            revisions = running.model(MODEL)["status"].get("revisions", [])
            return bool(revisions) and revisions[0].get("readyReplicas") == 3

        wait_for(all_ready, "three ready replicas", 120)
        yield running
    finally:
        running.stop()


def _replicas(platform: Platform) -> dict[int, str]:
    """Each replica's URL, by process id."""
    found = {}
    for pid in platform.replica_pids(REVISION):
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        found[pid] = f"http://127.0.0.1:{int(args[args.index(b'--port') + 1])}"
    return found


def _served(platform: Platform) -> dict[int, float]:
    return {pid: scraped(url, SERVED) for pid, url in _replicas(platform).items()}


def _opening(topic: str) -> list[dict[str, Any]]:
    document = " ".join(
        f"{topic} is line {i} of what this conversation is about." for i in range(30)
    )
    return [
        {"role": "system", "content": "You answer briefly."},
        {"role": "user", "content": f"Read this, then answer: {document}"},
    ]


def _turn(client: httpx.Client, platform: Platform, history: list[dict[str, Any]]) -> None:
    body = {"model": MODEL, "messages": history, "max_tokens": 4, "seed": 1}
    answer = client.post(f"{platform.gateway}/v1/chat/completions", json=body)
    assert answer.status_code == 200, answer.text
    assert HEADER not in answer.headers  # the load is for the gateway, not passed on
    history += [answer.json()["choices"][0]["message"], {"role": "user", "content": "Go on"}]


def test_replicas_report_their_engine_load(platform: Platform) -> None:
    url = next(iter(_replicas(platform).values()))
    polled = httpx.get(f"{url}/engine/load")
    assert polled.status_code == 200
    load = decode(polled.headers[HEADER])
    assert (load.running, load.waiting, load.slots) == (0, 0, 1)
    assert load.capacity >= 4096  # the slot's cache, and saved states beside
    body = {"model": MODEL, "messages": _opening("rain"), "max_tokens": 2}
    answered = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=30)
    assert answered.status_code == 200
    stamped = decode(answered.headers[HEADER])
    assert stamped.slots == 1
    assert stamped.chars_per_token != load.chars_per_token  # measured on the prompt it read


def test_a_conversation_keeps_landing_on_the_replica_holding_it(platform: Platform) -> None:
    with httpx.Client(timeout=30) as client:
        before = _served(platform)
        history = _opening("the sea")
        for _ in range(5):
            _turn(client, platform, history)
        moved = sorted(_served(platform)[pid] - count for pid, count in before.items())
        assert moved == [0, 0, 5]
        before = _served(platform)
        for topic in ("a mountain", "the desert", "a forest", "the city", "a river", "snow"):
            _turn(client, platform, _opening(topic))
        spread = [_served(platform)[pid] - count for pid, count in before.items()]
        assert sum(1 for n in spread if n) >= 2  # new conversations go to idle replicas


def test_a_full_replica_is_passed_over_for_one_with_room(platform: Platform) -> None:
    """One slot per replica: while the conversation's holder generates a long answer, its next
    turn goes to another replica rather than wait for the slot."""
    url = f"{platform.gateway}/v1/chat/completions"
    history = _opening("the moon")
    with httpx.Client(timeout=60) as client:
        before = _served(platform)
        _turn(client, platform, history)
        (holder,) = [pid for pid, count in _served(platform).items() if count > before[pid]]
        long = {"model": MODEL, "messages": list(history), "max_tokens": 2500, "seed": 3,
                "stream": True}  # fmt: skip
        with client.stream("POST", url, json=long) as generating:
            assert generating.status_code == 200
            reading = generating.iter_lines()  # kept: a reader dropped would close its stream
            next(reading)
            assert _running(_replicas(platform)[holder]) == 1  # the long answer is there
            before = _served(platform)
            _turn(client, platform, history)
            after = _served(platform)
        assert after[holder] == before[holder]  # full: not asked
        assert sum(after.values()) == sum(before.values()) + 1


def test_a_replica_busy_with_requests_from_elsewhere_is_known_by_its_polled_report(
    platform: Platform,
) -> None:
    """The gateway's poll of real replicas: a replica that holds the prompt but whose slot is
    taken by a request this gateway never sent is passed over; one that cannot be reached
    leaves no report (and is balanced as if silent)."""
    urls = list(_replicas(platform).values())
    table = RoutingTable()
    gone = f"http://127.0.0.1:{free_port()}"
    table.publish("default/routed", MODEL, {REVISION: (100, [(u, u) for u in [*urls, gone]])},
                  openai=True)  # fmt: skip
    route = table.lookup(MODEL)
    assert route is not None
    endpoints = route.revisions[0].endpoints
    busy, *idle = endpoints[:3]
    # A stream an earlier test closed frees its slot at the engine's next step.
    wait_for(lambda: all(_running(u) == 0 for u in urls), "every replica idle", 30)
    history = _opening("the stars")
    blocks = prompt_blocks("/v1/chat/completions", {"messages": history})
    busy.engine.hold(blocks)
    long = {"model": MODEL, "messages": history, "max_tokens": 2500, "seed": 3, "stream": True}
    with httpx.stream("POST", f"{busy.url}/v1/chat/completions", json=long, timeout=60) as reply:
        reading = reply.iter_lines()  # kept: a reader dropped would close its stream
        next(reading)

        def reported() -> bool:
            # A poll waits a second for each answer: on a loaded machine one may come later,
            # and is asked again at the next poll, as the gateway's poller does.
            asyncio.run(_polled(table, time.monotonic()))
            return all(e.engine.load is not None for e in endpoints[:3])

        wait_for(reported, "every reachable replica's report", 30)
        assert busy.engine.load is not None
        assert busy.engine.load.running == 1
        assert busy.engine.queued(busy.engine.load, busy.outstanding) == 1  # not ours, counted
        assert all(e.engine.load is not None and e.engine.load.running == 0 for e in idle)
        assert endpoints[3].engine.load is None  # unreachable: nothing reported
        weights = EngineWeights()
        rng = random.Random(1)
        fresh = endpoints[:3]
        chosen = pick_by_engine(fresh, time.monotonic(), rng, blocks, b"the stars", weights)
        assert chosen in idle
        # Stale reports (past two seconds): least outstanding, whatever the blocks say.
        later = time.monotonic() + weights.stale_after + 1
        idle[0].outstanding = 1
        pair = [busy, idle[0]]
        assert pick_by_engine(pair, later, rng, blocks, b"the stars", weights) is busy


def _running(url: str) -> int:
    return decode(httpx.get(f"{url}/engine/load", timeout=10).headers[HEADER]).running


async def _polled(table: RoutingTable, now: float) -> None:
    upstream = UpstreamPool(timeout=5)
    try:
        await EnginePolling(table, upstream).poll(now)
    finally:
        await upstream.close()
