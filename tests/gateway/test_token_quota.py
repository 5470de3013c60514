"""The tokens-per-minute quota: a namespace's budget, charged with what answers say they used,
and the reading of that from whole replies and from streams cut anywhere."""

from __future__ import annotations

import orjson

from modelplane.gateway.quotas import Quota, Quotas
from modelplane.gateway.usage import StreamTokens, reply_tokens


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_budget_admits_until_spent_then_refills_by_the_minute() -> None:
    clock = Clock()
    quotas = Quotas(clock=clock)
    quotas.set("team-a", Quota(tokens_per_minute=600))
    assert quotas.admit("team-a", tokens=True) is None
    quotas.release("team-a")
    quotas.charge("team-a", 900)  # one answer may overdraw the budget by its own size
    over = quotas.admit("team-a", tokens=True)
    assert over is not None
    assert "600 tokens per minute" in over.message
    assert over.retry_after == 31  # 301 tokens to refill at 10 a second
    assert quotas.admit("team-a") is None  # not a token-using request: the budget is not its
    quotas.release("team-a")
    assert quotas.admit("team-b", tokens=True) is None  # another namespace: unaffected
    quotas.release("team-b")
    clock.now = 31.0
    assert quotas.admit("team-a", tokens=True) is None
    quotas.release("team-a")


def test_a_full_budget_holds_one_minute_and_no_more() -> None:
    clock = Clock()
    quotas = Quotas(clock=clock)
    quotas.set("team-a", Quota(tokens_per_minute=60))
    clock.now = 3600.0  # an hour idle refills a minute's worth, not an hour's
    quotas.charge("team-a", 60)
    assert quotas.admit("team-a", tokens=True) is not None


def test_whole_replies_say_what_they_used() -> None:
    usage = {"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12}
    assert reply_tokens(orjson.dumps({"choices": [], "usage": usage})) == 12
    assert reply_tokens(orjson.dumps({"usage": {"prompt_tokens": 3}})) == 3  # embeddings
    assert reply_tokens(b"not json") == 0
    assert reply_tokens(orjson.dumps({"error": {"message": "no"}})) == 0


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


def test_a_stream_without_the_comment_counts_its_usage_event_or_its_events() -> None:
    with_usage = StreamTokens()
    with_usage.feed(stream(b'data: {"choices":[{"delta":{"content":"a"}}],"usage":null}',
                           b'data: {"choices":[],"usage": {"total_tokens": 40}}'))  # fmt: skip
    assert with_usage.total == 40
    bare = StreamTokens()
    bare.feed(stream(*[b'data: {"choices":[{"delta":{"content":"x"}}]}'] * 5, b"data: [DONE]"))
    assert bare.total == 5
