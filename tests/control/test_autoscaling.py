"""The autoscaler with fake time: stable and panic windows, bounds, scale to zero."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from modelplane.api import Scaling
from modelplane.control.autoscaling import Sample, decide

NOW = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)


def flat(value: float, seconds: int = 60) -> list[Sample]:
    return [Sample(NOW - timedelta(seconds=s), value) for s in range(seconds)]


def test_replicas_follow_in_flight_per_replica() -> None:
    scaling = Scaling(min_replicas=1, max_replicas=10, target_in_flight=4)
    assert decide(scaling, flat(8), current=2, last_request=NOW, now=NOW).replicas == 2
    assert decide(scaling, flat(13), current=4, last_request=NOW, now=NOW).replicas == 4
    assert decide(scaling, flat(100), current=10, last_request=NOW, now=NOW).replicas == 10


def test_burst_triggers_panic_and_scales_at_once() -> None:
    scaling = Scaling(min_replicas=1, max_replicas=10, target_in_flight=4)
    samples = flat(4, 60)[6:] + [Sample(NOW - timedelta(seconds=s), 40) for s in range(5)]
    decision = decide(scaling, samples, current=1, last_request=NOW, now=NOW)
    assert decision.panic
    # The 6 s panic window averages (5 x 40 + 4) / 6 = 34 in flight: ceil(34 / 4) = 9 replicas.
    assert decision.replicas == 9


def test_panic_never_scales_down() -> None:
    scaling = Scaling(min_replicas=1, max_replicas=10, target_in_flight=4)
    until = NOW + timedelta(seconds=30)
    decision = decide(scaling, flat(0), current=6, last_request=NOW, now=NOW, panicking_until=until)
    assert decision.replicas == 6


def test_idle_revision_keeps_one_replica_until_scale_to_zero_is_due() -> None:
    scaling = Scaling(min_replicas=0, max_replicas=4, scale_to_zero_after_seconds=300)
    recent = NOW - timedelta(seconds=100)
    assert decide(scaling, flat(0), current=1, last_request=recent, now=NOW).replicas == 1
    long_ago = NOW - timedelta(seconds=301)
    decision = decide(scaling, flat(0), current=1, last_request=long_ago, now=NOW)
    assert decision.replicas == 0
    assert "scaled to zero" in decision.reason


def test_min_replicas_holds_without_traffic_and_demand_wakes_from_zero() -> None:
    scaling = Scaling(min_replicas=2, max_replicas=4)
    assert decide(scaling, [], current=2, last_request=None, now=NOW).replicas == 2
    zero = Scaling(min_replicas=0, max_replicas=4, scale_to_zero_after_seconds=0)
    held = [Sample(NOW, 1)]  # one request held by the gateway
    assert decide(zero, held, current=0, last_request=NOW, now=NOW).replicas == 1


def test_scale_to_zero_follows_the_last_request_not_the_window() -> None:
    scaling = Scaling(min_replicas=0, max_replicas=4, scale_to_zero_after_seconds=5)
    burst_then_quiet = [Sample(NOW - timedelta(seconds=s), 8 if s > 10 else 0) for s in range(60)]
    last = NOW - timedelta(seconds=11)
    assert decide(scaling, burst_then_quiet, current=2, last_request=last, now=NOW).replicas == 0
