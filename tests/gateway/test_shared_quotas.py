"""Gateways that share a namespace's traffic share its quota: each holds its part of every
limit but the replica cap, so the namespace as a whole is held to what it was given."""

from __future__ import annotations

import pytest

from modelplane.api.quotas import Quota, quota_from_annotations
from modelplane.errors import SpecError
from modelplane.gateway.quotas import Quotas
from tests.gateway.test_token_quota import Clock


def admitted(quotas: Quotas, namespace: str, tries: int) -> int:
    count = 0
    for _ in range(tries):
        if quotas.admit(namespace) is None:
            count += 1
    return count


def test_each_of_two_gateways_admits_half_the_rate() -> None:
    clock = Clock()
    quotas = Quotas(clock=clock)
    quotas.set("team-a", Quota(requests_per_second=10))
    quotas.set_peers(2)
    assert admitted(quotas, "team-a", 50) == 5  # a full bucket of its share, then nothing
    clock.now = 1.0
    assert admitted(quotas, "team-a", 50) == 5
    over = quotas.admit("team-a")
    assert over is not None
    assert "quota of 10 requests per second (shared by 2 gateways)" in over.message
    assert quotas.max_replicas("team-a") is None
    quotas.set_peers(1)  # its peer gone: the whole quota again, and no refill for it
    assert admitted(quotas, "team-a", 50) == 0
    clock.now = 2.0
    assert admitted(quotas, "team-a", 50) == 10


def test_a_peer_joining_or_leaving_neither_refills_nor_forgives() -> None:
    """Every rolling update changes the count of gateways: what buckets and budgets hold is
    kept in proportion, so it is no way around a quota."""
    clock = Clock()
    quotas = Quotas(clock=clock)
    quotas.set("team-a", Quota(requests_per_second=10, tokens_per_minute=600))
    assert admitted(quotas, "team-a", 50) == 10
    quotas.set_peers(2)
    quotas.set_peers(3)
    quotas.set_peers(2)
    assert admitted(quotas, "team-a", 50) == 0
    quotas.charge("team-a", 1200)  # a minute's debt (600): owed again after the changes
    quotas.set_peers(1)
    over = quotas.admit("team-a", reserve=1)
    assert over is not None
    assert over.retry_after == 61  # 601 tokens to refill at 10 a second


def test_concurrency_and_tokens_are_shared_rounding_up_and_the_replica_cap_is_not() -> None:
    quotas = Quotas(clock=Clock())
    quotas.set_peers(3)
    quotas.set("team-a", Quota(concurrent_requests=4, max_replicas=6, tokens_per_minute=1000))
    assert admitted(quotas, "team-a", 5) == 2  # ceil(4 / 3)
    assert quotas.max_replicas("team-a") == 6
    assert quotas.given("team-a") == Quota(
        concurrent_requests=4, max_replicas=6, tokens_per_minute=1000
    )
    quotas.release("team-a")
    quotas.release("team-a")
    assert quotas.admit("team-a", reserve=334) is None  # ceil(1000 / 3) = 334 left here
    quotas.release("team-a")
    assert quotas.admit("team-a", reserve=1) is not None


def test_annotations_are_a_quota_and_bad_ones_are_named() -> None:
    annotations = {
        "quota.modelplane.io/requests-per-second": "50",
        "quota.modelplane.io/tokens-per-minute": " 20000 ",
        "kubernetes.io/metadata.name": "team-a",
    }
    assert quota_from_annotations("team-a", annotations) == Quota(
        requests_per_second=50, tokens_per_minute=20000
    )
    assert quota_from_annotations("team-a", {"owner": "x"}) is None
    with pytest.raises(SpecError) as bad:
        quota_from_annotations("team-a", {"quota.modelplane.io/concurrent-requests": "1.5",
                                          "quota.modelplane.io/max-replicas": "-1"})  # fmt: skip
    said = str(bad.value)
    assert "quota.modelplane.io/concurrent-requests: Input should be a valid integer" in said
    assert "quota.modelplane.io/max-replicas: Input should be greater than or equal to 0" in said
    with pytest.raises(SpecError, match=r"unknown quota annotation quota\.modelplane\.io/rps"):
        quota_from_annotations("team-a", {"quota.modelplane.io/rps": "5"})
