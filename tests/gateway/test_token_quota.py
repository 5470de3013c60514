"""The tokens-per-minute quota: a namespace's budget, charged with what answers say they used,
and the reading of that from whole replies and from streams cut anywhere."""

from __future__ import annotations

import asyncio

import orjson

from modelplane.api.quotas import Quota
from modelplane.gateway.quotas import Quotas
from modelplane.gateway.usage import (
    UNSTATED_MAX_TOKENS,
    StreamTokens,
    TokenMeter,
    answer_tokens,
    reply_tokens,
    reservation,
)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_budget_admits_until_spent_then_refills_by_the_minute() -> None:
    clock = Clock()
    quotas = Quotas(clock=clock)
    quotas.set("team-a", Quota(tokens_per_minute=600))
    assert quotas.admit("team-a", reserve=100) is None
    quotas.release("team-a")
    quotas.charge("team-a", 900 - 100)  # the answer used 900: one may overdraw by its own size
    over = quotas.admit("team-a", reserve=100)
    assert over is not None
    assert "600 tokens per minute" in over.message
    assert over.retry_after == 31  # 301 tokens to refill at 10 a second
    assert quotas.admit("team-a") is None  # a v2 request uses no model tokens
    quotas.release("team-a")
    assert quotas.admit("team-b", reserve=100) is None  # another namespace: unaffected
    quotas.release("team-b")
    clock.now = 31.0
    assert quotas.admit("team-a", reserve=100) is None
    quotas.release("team-a")


def test_requests_sent_together_reserve_before_any_answers() -> None:
    quotas = Quotas(clock=Clock())
    quotas.set("team-a", Quota(tokens_per_minute=1000))
    admitted = [quotas.admit("team-a", reserve=400) is None for _ in range(10)]
    assert admitted == [True, True, True] + [False] * 7  # 1000 left, 600, 200, then spent


def test_a_budget_holds_one_minute_and_owes_at_most_one() -> None:
    clock = Clock()
    quotas = Quotas(clock=clock)
    quotas.set("team-a", Quota(tokens_per_minute=60))
    assert quotas.admit("team-a", reserve=1) is None  # the budget starts now, full
    quotas.release("team-a")
    clock.now = 3600.0  # an hour idle refills a minute's worth, not an hour's
    quotas.charge("team-a", 60)
    assert quotas.admit("team-a", reserve=1) is not None
    quotas.charge("team-a", 1_000_000)  # a huge answer: the debt stops at a minute's worth
    over = quotas.admit("team-a", reserve=1)
    assert over is not None
    assert over.retry_after == 61


def test_a_quota_set_again_keeps_its_token_debt_unless_the_budget_changes() -> None:
    quotas = Quotas(clock=Clock())
    quotas.set("team-a", Quota(tokens_per_minute=60))
    quotas.charge("team-a", 120)
    quotas.set("team-a", Quota(tokens_per_minute=60, max_replicas=2))
    assert quotas.admit("team-a", reserve=1) is not None
    quotas.set("team-a", Quota(tokens_per_minute=120))
    assert quotas.admit("team-a", reserve=1) is None


def test_a_request_refused_for_tokens_costs_no_request_of_the_rate() -> None:
    quotas = Quotas(clock=Clock())
    quotas.set("team-a", Quota(requests_per_second=1, tokens_per_minute=60))
    quotas.charge("team-a", 100)
    assert quotas.admit("team-a", reserve=10) is not None
    assert quotas.admit("team-a") is None  # the second's one request is still there


def test_a_reservation_is_the_prompt_s_bytes_over_four_and_its_max_tokens() -> None:
    body = b"x" * 400
    assert reservation("/v1/chat/completions", body, {"max_tokens": 12}) == 112
    assert reservation("/v1/chat/completions", body, {"max_completion_tokens": 5}) == 105
    assert reservation("/v1/completions", body, {}) == 100 + UNSTATED_MAX_TOKENS
    assert reservation("/v1/embeddings", body, {"max_tokens": 12}) == 100


def test_whole_replies_say_what_they_used() -> None:
    usage = {"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12}
    assert reply_tokens(orjson.dumps({"choices": [], "usage": usage})) == 12
    assert reply_tokens(orjson.dumps({"usage": {"prompt_tokens": 3}})) == 3  # embeddings
    assert reply_tokens(b"not json") == 0
    assert reply_tokens(orjson.dumps({"error": {"message": "no"}})) == 0
    # The usage record takes the two kinds apart.
    assert answer_tokens(orjson.dumps({"choices": [], "usage": usage})) == (7, 5)
    assert answer_tokens(orjson.dumps({"usage": {"prompt_tokens": 3}})) == (3, 0)
    assert answer_tokens(b"not json") == (0, 0)


def stream(*events: bytes) -> bytes:
    return b"".join(e + b"\n\n" for e in events)


def test_a_stream_is_read_however_it_is_cut() -> None:
    body = stream(
        b'data: {"choices":[{"delta":{"content":"Hi"}}]}',
        b'data: {"choices":[{"delta":{"content":"!"}}]}',
        b': usage {"prompt_tokens":9,"completion_tokens":2,"total_tokens":11}',
        b"data: [DONE]",
    )
    for size in (1, 7, 64, len(body)):
        used = StreamTokens()
        for start in range(0, len(body), size):
            used.feed(body[start : start + size])
        assert used.total == 11
        assert used.used() == (9, 2)


def test_a_stream_without_the_comment_counts_its_usage_event_or_its_events() -> None:
    with_usage = StreamTokens()
    with_usage.feed(stream(b'data: {"choices":[{"delta":{"content":"a"}}],"usage":null}',
                           b'data: {"choices":[],"usage": {"total_tokens": 40}}'))  # fmt: skip
    assert with_usage.total == 40
    bare = StreamTokens()
    bare.feed(stream(*[b'data: {"choices":[{"delta":{"content":"x"}}]}'] * 5, b"data: [DONE]"))
    assert bare.total == 5
    assert bare.used() == (0, 5)  # what it cost at least: a token an event


def test_a_meter_reads_the_answer_sent_and_holds_a_cut_stream_to_its_reservation() -> None:
    sent: list[bytes] = []

    async def send(message: dict[str, object]) -> None:
        sent.append(message.get("body", b""))  # type: ignore[arg-type]

    def metered(streaming: bool, *chunks: bytes) -> TokenMeter:
        meter = TokenMeter(streaming)
        watching = meter.watching(send)
        for chunk in chunks:
            asyncio.run(watching({"type": "http.response.body", "body": chunk}))
        return meter

    whole = orjson.dumps({"usage": {"total_tokens": 30}})
    assert metered(False, whole[:5], whole[5:]).used(100) == 30
    done = stream(b'data: {"choices":[]}', b': usage {"total_tokens": 7}', b"data: [DONE]")
    assert metered(True, done).used(100) == 7
    cut = stream(*[b'data: {"choices":[{"delta":{"content":"x"}}]}'] * 3)
    assert metered(True, cut).used(100) == 100  # left before the usage line: the reservation
    assert b"".join(sent).count(b"usage") == 2  # everything still reached the client
