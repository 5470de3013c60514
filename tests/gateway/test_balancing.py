"""Revision choice by weight and replica choice by load, over many draws."""

from __future__ import annotations

import math
import random
from collections import Counter

from modelplane.gateway.balancing import (
    pick_by_prefix,
    pick_endpoint,
    pick_in_turn,
    pick_revision,
    prefer_holding,
)
from modelplane.gateway.routing import Endpoint, RevisionRoute


def test_weights_split_traffic() -> None:
    rng = random.Random(7)
    revisions = [RevisionRoute("r1", 50), RevisionRoute("r2", 50)]
    draws = Counter(pick_revision(revisions, rng).name for _ in range(400))  # type: ignore[union-attr]
    assert min(draws.values()) >= 100  # each side gets at least 25% of 400
    canary = [RevisionRoute("r1", 90), RevisionRoute("r2", 10)]
    share = Counter(pick_revision(canary, rng).name for _ in range(10_000))  # type: ignore[union-attr]
    assert 800 <= share["r2"] <= 1200


def test_zero_weight_revisions_get_nothing() -> None:
    rng = random.Random(1)
    revisions = [RevisionRoute("r1", 100), RevisionRoute("r2", 0)]
    assert {pick_revision(revisions, rng).name for _ in range(100)} == {"r1"}  # type: ignore[union-attr]
    assert pick_revision([RevisionRoute("r1", 0)], rng) is None


def test_power_of_two_choices_prefers_the_less_busy_replica() -> None:
    rng = random.Random(3)
    busy, idle = Endpoint("a", "http://a", "r1", outstanding=10), Endpoint("b", "http://b", "r1")
    picks = Counter(pick_endpoint([busy, idle], 0.0, rng).id for _ in range(100))  # type: ignore[union-attr]
    assert picks == {"b": 100}


def test_ejected_and_tried_replicas_are_skipped_unless_nothing_else_is_left() -> None:
    rng = random.Random(5)
    ejected = Endpoint("a", "http://a", "r1", ejected_until=100.0)
    healthy = Endpoint("b", "http://b", "r1")
    assert pick_endpoint([ejected, healthy], 50.0, rng).id == "b"  # type: ignore[union-attr]
    assert pick_endpoint([ejected], 50.0, rng).id == "a"  # type: ignore[union-attr]
    assert pick_endpoint([ejected, healthy], 50.0, rng, exclude={"b"}).id == "a"  # type: ignore[union-attr]
    assert pick_endpoint([healthy], 50.0, rng, exclude={"b"}) is None


def _replicas(count: int) -> list[Endpoint]:
    return [Endpoint(f"r1-{i}", f"http://10.0.0.{i}:8000", "r1") for i in range(count)]


def _owner(endpoints: list[Endpoint], prefix: bytes) -> str:
    found = pick_by_prefix(endpoints, now=0.0, prefix=prefix)
    assert found is not None
    return found.id


def test_a_prefix_always_lands_on_the_same_replica_and_prefixes_spread() -> None:
    endpoints = _replicas(4)
    prefixes = [f"system prompt of conversation {i}".encode() for i in range(2000)]
    owners = [_owner(endpoints, p) for p in prefixes]
    assert owners == [_owner(endpoints, p) for p in prefixes]  # sticky
    share = Counter(owners)
    assert len(share) == 4
    assert min(share.values()) > 300  # each of 4 gets a fair part of 2000 (500 on average)


def test_a_replica_leaving_moves_only_its_own_prefixes() -> None:
    endpoints = _replicas(5)
    prefixes = [f"conversation {i}".encode() for i in range(1000)]
    before = {p: _owner(endpoints, p) for p in prefixes}
    gone = endpoints.pop(2)
    after = {p: _owner(endpoints, p) for p in prefixes}
    moved = [p for p in prefixes if before[p] != after[p]]
    assert moved
    assert all(before[p] == gone.id for p in moved)


def test_a_busy_owner_is_passed_over_within_the_load_bound() -> None:
    endpoints = _replicas(4)
    prefix = b"a long shared system prompt"
    owner = next(e for e in endpoints if e.id == _owner(endpoints, prefix))
    owner.outstanding = 10  # far above the average the others carry
    spilled = pick_by_prefix(endpoints, now=0.0, prefix=prefix)
    assert spilled is not None
    assert spilled is not owner
    # Many requests for one hot prefix: none carries more than its bound of the total.
    for endpoint in endpoints:
        endpoint.outstanding = 0
    for _ in range(40):
        chosen = pick_by_prefix(endpoints, now=0.0, prefix=prefix)
        assert chosen is not None
        chosen.outstanding += 1
    assert max(e.outstanding for e in endpoints) <= math.ceil(1.25 * 40 / 4)


def test_ejected_replicas_are_skipped_by_prefix_and_round_robin() -> None:
    endpoints = _replicas(3)
    prefix = b"conversation about the weather"
    owner = _owner(endpoints, prefix)
    next(e for e in endpoints if e.id == owner).ejected_until = 100.0
    assert _owner(endpoints, prefix) != owner
    turns = [pick_in_turn(endpoints, now=0.0, turn=t) for t in range(6)]
    assert [e.id for e in turns if e is not None].count(owner) == 0
    assert len({e.id for e in turns if e is not None}) == 2


def test_a_request_of_an_adapter_prefers_replicas_that_hold_it_within_the_bound() -> None:
    holding = Endpoint("a", "http://a", "r1", adapters=frozenset({"pirate"}))
    other = Endpoint("b", "http://b", "r1")
    assert prefer_holding([holding, other], "pirate", 0.0) == [holding]
    assert prefer_holding([holding, other], "poet", 0.0) == [holding, other]  # none holds it
    holding.outstanding = 3  # over 1.25 times the average: loading it elsewhere beats waiting
    assert prefer_holding([holding, other], "pirate", 0.0) == [holding, other]
    holding.outstanding, holding.ejected_until = 0, 100.0  # an ejected one counts for nothing
    assert prefer_holding([holding, other], "pirate", 0.0) == [holding, other]
