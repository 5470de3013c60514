"""Revision choice by weight and replica choice by load, over many draws."""

from __future__ import annotations

import random
from collections import Counter

from modelplane.gateway.balancing import pick_endpoint, pick_revision
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
