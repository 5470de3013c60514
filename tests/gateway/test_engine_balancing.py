"""Engine-aware balancing's pure parts, with time passed in: the prompt's chained blocks, each
replica's index of the blocks sent to it (evicted as its reported cache capacity says), the
score of what a replica holds against its load, the bound on waiting, and the fallbacks when
reports are stale or never came."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest

from modelplane.api.engine_load import EngineLoad
from modelplane.gateway.balancing import pick_by_prefix
from modelplane.gateway.engine_state import BLOCK_CHARS, EngineView
from modelplane.gateway.prefix import prompt_blocks, prompt_prefix
from modelplane.gateway.routing import Endpoint
from modelplane.gateway.scoring import EngineWeights, pick_by_engine

CHAT = "/v1/chat/completions"
DOCUMENT = "".join(f"line {i} of a long document about serving models. " for i in range(60))
IDLE = EngineLoad(running=0, waiting=0, slots=2, kv_usage=0.0, capacity=4096, chars_per_token=4)


def _chat(*turns: str, system: str = "You answer briefly.") -> dict[str, Any]:
    messages = [{"role": "system", "content": system}]
    for number, text in enumerate(turns):
        messages.append({"role": "user" if number % 2 == 0 else "assistant", "content": text})
    return {"model": "chat", "messages": messages}


def _replicas(count: int, load: EngineLoad | None = IDLE, now: float = 0.0) -> list[Endpoint]:
    found = [Endpoint(f"r1-{i}", f"http://10.0.0.{i}:8000", "r1") for i in range(count)]
    if load is not None:
        for endpoint in found:
            endpoint.engine.note(load, now)
    return found


def _pick(
    endpoints: list[Endpoint],
    blocks: tuple[bytes, ...],
    now: float = 0.0,
    weights: EngineWeights | None = None,
    seed: int = 1,
    prefix: bytes | None = b"a conversation's start",
) -> Endpoint:
    chosen = pick_by_engine(
        endpoints, now, random.Random(seed), blocks, prefix, weights or EngineWeights()
    )
    assert chosen is not None
    return chosen


# -- blocks ---------------------------------------------------------------------------------------


def test_a_next_turn_starts_with_every_block_of_the_turn_before() -> None:
    first = prompt_blocks(CHAT, _chat(DOCUMENT))
    later = prompt_blocks(CHAT, _chat(DOCUMENT, "An answer.", "And then?"))
    assert len(first) == len(DOCUMENT) // BLOCK_CHARS  # only whole blocks
    assert later[: len(first)] == first
    assert len(later) >= len(first)


def test_blocks_chain_so_only_a_shared_start_shares_hashes() -> None:
    one = prompt_blocks(CHAT, _chat("Question one. " + DOCUMENT))
    two = prompt_blocks(CHAT, _chat("Question two. " + DOCUMENT))
    assert not set(one) & set(two)  # the same text after a different start shares nothing
    shared = "A long shared system prompt. " * 40
    three = prompt_blocks(CHAT, _chat("Question three. " + DOCUMENT, system=shared))
    four = prompt_blocks(CHAT, _chat("Question four. " + DOCUMENT, system=shared))
    common = len(shared) // BLOCK_CHARS
    assert three[:common] == four[:common]
    assert not set(three[common:]) & set(four[common:])


def test_completions_are_cut_from_the_prompt_and_other_paths_have_none() -> None:
    prompt = {"model": "chat", "prompt": DOCUMENT}
    assert prompt_blocks("/v1/completions", prompt) == prompt_blocks(
        "/v1/completions", {"model": "chat", "prompt": [DOCUMENT, "ignored"]}
    )
    assert len(prompt_blocks("/v1/completions", prompt)) == len(DOCUMENT) // BLOCK_CHARS
    assert prompt_blocks("/v1/embeddings", {"input": DOCUMENT}) == ()
    assert prompt_blocks(CHAT, _chat("short")) == ()


# -- the index -------------------------------------------------------------------------------------


def test_a_replica_holds_the_blocks_sent_to_it_up_to_the_first_it_lacks() -> None:
    view = EngineView()
    first = prompt_blocks(CHAT, _chat(DOCUMENT))
    later = prompt_blocks(CHAT, _chat(DOCUMENT, "An answer. " * 30, "And then?"))
    assert view.holding(later) == 0
    view.hold(first)
    assert view.holding(later) == len(first)
    assert view.holding((b"elsewhere", *first)) == 0  # a run from the start, not any block


def test_blocks_least_recently_sent_go_first_once_over_the_reported_capacity() -> None:
    view = EngineView()
    # 64 tokens of 4 characters: room for one block of 256.
    view.note(EngineLoad(0, 0, 1, 0.0, capacity=128, chars_per_token=4.0), now=0.0)
    assert view.capacity == 2
    a, b, c = (bytes([n]) * 8 for n in range(3))
    view.hold([a, b])
    view.hold([c])
    assert list(view.held) == [b, c]
    view.hold([b])  # used again: now the most recent
    view.hold([a])
    assert list(view.held) == [b, a]
    # A report of a smaller cache evicts at once.
    view.note(EngineLoad(0, 0, 1, 0.0, capacity=64, chars_per_token=4.0), now=1.0)
    assert list(view.held) == [a]


def test_a_report_is_fresh_for_two_seconds() -> None:
    view = EngineView()
    assert view.fresh(0.0, 2.0) is None  # nothing reported yet
    view.note(IDLE, now=10.0)
    assert view.fresh(12.0, 2.0) == IDLE
    assert view.fresh(12.1, 2.0) is None


# -- the score -------------------------------------------------------------------------------------


def test_a_conversation_goes_where_its_blocks_are() -> None:
    endpoints = _replicas(4)
    first = prompt_blocks(CHAT, _chat(DOCUMENT))
    endpoints[2].engine.hold(first)
    later = prompt_blocks(CHAT, _chat(DOCUMENT, "An answer.", "And then?"))
    assert {_pick(endpoints, later, seed=s).id for s in range(20)} == {"r1-2"}


def test_new_prompts_spread_over_idle_replicas() -> None:
    endpoints = _replicas(4)
    for prefix in (None, b"by the ring"):  # ties at random, or as the prefix ring orders them
        picks = Counter(
            _pick(
                endpoints,
                prompt_blocks(CHAT, _chat(f"{n} {DOCUMENT}")),
                seed=n,
                prefix=prefix and prefix + bytes([n]),
            ).id
            for n in range(200)
        )
        assert len(picks) == 4
        assert min(picks.values()) >= 25


def test_a_conversation_too_short_for_a_block_keeps_its_replica_while_loads_are_even() -> None:
    endpoints = _replicas(4)
    history = _chat("Tell me a story about a small robot.")
    prefix = prompt_prefix(CHAT, history)
    assert prompt_blocks(CHAT, history) == ()
    chosen = {_pick(endpoints, (), seed=s, prefix=prefix).id for s in range(20)}
    assert chosen == {pick_by_prefix(endpoints, 0.0, prefix).id}  # type: ignore[arg-type,union-attr]
    owner = next(e for e in endpoints if e.id in chosen)
    owner.outstanding = 1  # busier: the score decides, not the ring
    assert _pick(endpoints, (), prefix=prefix) is not owner


def test_a_busier_replica_loses_a_partial_hit_to_an_idle_one() -> None:
    endpoints = _replicas(2)
    blocks = prompt_blocks(CHAT, _chat(DOCUMENT))
    endpoints[0].engine.hold(blocks[:1])  # one block of eight
    endpoints[0].engine.note(EngineLoad(1, 0, 2, 0.3, 4096, 4.0), now=0.0)
    assert _pick(endpoints, blocks).id == "r1-1"
    endpoints[0].engine.hold(blocks)  # all of it: worth sharing a busy replica
    assert _pick(endpoints, blocks).id == "r1-0"


def test_a_full_replica_is_passed_over_while_another_has_room() -> None:
    endpoints = _replicas(2)
    blocks = prompt_blocks(CHAT, _chat(DOCUMENT))
    endpoints[0].engine.hold(blocks)
    endpoints[0].engine.note(EngineLoad(2, 0, 2, 0.9, 4096, 4.0), now=0.0)  # both slots
    endpoints[1].engine.note(EngineLoad(1, 0, 2, 0.5, 4096, 4.0), now=0.0)
    assert _pick(endpoints, blocks).id == "r1-1"
    # With none that has room, the best score again (the engine's waiting list takes it).
    endpoints[1].engine.note(EngineLoad(2, 3, 2, 0.9, 4096, 4.0), now=0.0)
    assert _pick(endpoints, blocks).id == "r1-0"
    # A bound that lets a request wait behind the running ones lets the holder take it.
    endpoints[1].engine.note(EngineLoad(1, 0, 2, 0.5, 4096, 4.0), now=0.0)
    assert _pick(endpoints, blocks, weights=EngineWeights(max_waiting=1)).id == "r1-0"


def test_requests_in_flight_count_exactly_and_others_as_reported() -> None:
    endpoints = _replicas(2)
    blocks = prompt_blocks(CHAT, _chat(DOCUMENT))
    holder = endpoints[0]
    holder.engine.hold(blocks)
    holder.outstanding = 2  # sent since its last report, which said idle
    assert _pick(endpoints, blocks).id == "r1-1"
    # It reported both of them running; they ended since: the report does not hold it full.
    both = EngineLoad(2, 0, 2, 0.5, 4096, 4.0)
    holder.engine.note(both, now=0.0, outstanding=2)
    holder.outstanding = 0
    assert holder.engine.queued(both, 0) == 0
    assert _pick(endpoints, blocks).id == "r1-0"
    # Two running there that this gateway did not send: full.
    holder.engine.note(both, now=0.0, outstanding=0)
    assert holder.engine.queued(both, 0) == 2
    assert _pick(endpoints, blocks).id == "r1-1"


def test_stale_reports_fall_back_to_least_outstanding() -> None:
    endpoints = _replicas(2, now=0.0)
    blocks = prompt_blocks(CHAT, _chat(DOCUMENT))
    endpoints[0].engine.hold(blocks)
    endpoints[0].outstanding = 1
    assert _pick(endpoints, blocks, now=1.0).id == "r1-0"  # fresh: the blocks win
    assert {_pick(endpoints, blocks, now=2.5, seed=s).id for s in range(20)} == {"r1-1"}


def test_replicas_that_never_report_are_placed_by_prefix_hash() -> None:
    endpoints = _replicas(4, load=None)
    blocks = prompt_blocks(CHAT, _chat(DOCUMENT))
    for prefix in (b"one conversation's start", b"another's"):
        chosen = pick_by_engine(endpoints, 0.0, random.Random(1), blocks, prefix, EngineWeights())
        assert chosen is pick_by_prefix(endpoints, 0.0, prefix)


def test_weights_are_read_from_the_option_and_wrong_ones_refused() -> None:
    weights = EngineWeights.parse("prefix=2, kv=0, max-waiting=3")
    assert weights == EngineWeights(prefix=2.0, queue=1.0, kv=0.0, max_waiting=3)
    assert EngineWeights.parse("") == EngineWeights()
    for wrong, says in (
        ("hits=1", "not one of"),
        ("queue=lots", "not a number"),
        ("kv=-1", "0 or more"),
    ):
        with pytest.raises(ValueError, match=says):
            EngineWeights.parse(wrong)
