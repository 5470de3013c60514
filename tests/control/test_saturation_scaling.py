"""Autoscaling on what the replicas report (waiting requests, KV-cache use, tokens per second),
with fake time: sustained saturation scales out, the stable window brings it back, the bounds
hold, a Model at zero still wakes on held requests, and missing reports fall back to in-flight
requests with the ScalingActive condition and one event saying why."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from modelplane.api import Model, Scaling, revision_digest
from modelplane.control.autoscaling import DemandMemory, Reading, Sample, decide
from modelplane.control.planning import Observed, plan
from modelplane.control.reconcile import Phase, ReplicaView
from modelplane.control.revisions import RevisionRef
from tests.models import onnx_model

NOW = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
WAITING = Scaling(min_replicas=1, max_replicas=6, metric="waiting", target=2)


def reported(value: float, seconds: int = 60, in_flight: float = 4) -> list[Sample]:
    """One sample a second for ``seconds`` up to NOW, the replicas reporting ``value`` in all."""
    return [Sample(NOW - timedelta(seconds=s), in_flight, value) for s in range(seconds)]


def test_sustained_waiting_scales_out_and_the_bounds_hold() -> None:
    # 7 waiting over the replicas, 2 allowed per replica: 4 replicas.
    decision = decide(WAITING, reported(7), current=2, last_request=NOW, now=NOW)
    assert (decision.replicas, decision.panic) == (4, False)
    assert "average reported waiting 7.0, target 2" in decision.reason
    assert decide(WAITING, reported(50), current=6, last_request=NOW, now=NOW).replicas == 6
    # None waiting: the fewest allowed, whatever is in flight (those hold slots, not a queue).
    quiet = reported(0, in_flight=40)
    assert decide(WAITING, quiet, current=3, last_request=NOW, now=NOW).replicas == 1


def test_a_short_queue_waits_for_the_stable_window_and_a_burst_panics() -> None:
    brief = reported(0)[5:] + reported(3, seconds=5)  # 5 s of 3 waiting in a quiet minute
    decision = decide(WAITING, brief, current=1, last_request=NOW, now=NOW)
    assert (decision.replicas, decision.panic) == (1, False)  # 15 / 60 s averages 0.25
    burst = reported(0)[6:] + reported(12, seconds=6)
    panic = decide(WAITING, burst, current=1, last_request=NOW, now=NOW)
    # The 6 s panic window averages 72 / 7 = 10.3 waiting, 2 per replica: 6 at once.
    assert (panic.replicas, panic.panic) == (6, True)


def test_scaling_down_follows_the_stable_window_not_the_latest_report() -> None:
    kv = Scaling(min_replicas=1, max_replicas=8, metric="kvCache", target=0.5)
    # Four replicas filled 80% of their caches for 50 s, then emptied them 10 s ago.
    samples = reported(0.0, seconds=10) + [
        Sample(NOW - timedelta(seconds=s), 8, 3.2) for s in range(10, 60)
    ]
    held = decide(kv, samples, current=4, last_request=NOW, now=NOW)
    assert held.replicas == 6  # (50 x 3.2) / 60 = 2.67 in all: 6 at 0.5 each, not 1 at once
    later = NOW + timedelta(seconds=61)
    emptied = [Sample(later - timedelta(seconds=s), 0, 0.0) for s in range(60)]
    assert decide(kv, emptied, current=4, last_request=later, now=later).replicas == 1


def test_tokens_per_second_over_replicas() -> None:
    rate = Scaling(min_replicas=1, max_replicas=10, metric="tokensPerSecond", target=100)
    assert decide(rate, reported(450), current=3, last_request=NOW, now=NOW).replicas == 5


def test_missing_reports_fall_back_to_in_flight_and_scale_from_zero_still_holds() -> None:
    unreported = [Sample(NOW - timedelta(seconds=s), 12, None) for s in range(60)]
    decision = decide(WAITING, unreported, current=1, last_request=NOW, now=NOW)
    assert decision.replicas == 3  # 12 in flight, targetInFlight 4
    assert "in-flight burst" in decision.reason  # 3 times the one replica's 4
    # Reports that stopped: the latest sample decides, older reports are not taken as fresh.
    stopped = unreported[:5] + reported(9)[5:]
    assert "in-flight" in decide(WAITING, stopped, current=1, last_request=NOW, now=NOW).reason
    from_zero = Scaling(min_replicas=0, max_replicas=4, metric="waiting", target=1,
                        scale_to_zero_after_seconds=30)  # fmt: skip
    held = [Sample(NOW, 1, None)]  # a chat request held at the gateway, no replica to report
    assert decide(from_zero, held, current=0, last_request=NOW, now=NOW).replicas == 1
    idle = reported(0, in_flight=0)
    long_ago = NOW - timedelta(seconds=31)
    assert decide(from_zero, idle, current=1, last_request=long_ago, now=NOW).replicas == 0


def chat_model(**scaling: Any) -> Model:
    return onnx_model(
        "chat", source={"uri": "file:///tiny.gguf"}, format="llamacpp", task="chat",
        scaling={"minReplicas": 1, "maxReplicas": 4, **scaling},
    )  # fmt: skip


def replicas(n: int) -> tuple[ReplicaView, ...]:
    return tuple(ReplicaView(f"chat-r1-{i}", "chat-r1", Phase.READY) for i in range(n))


def condition_of(model: Model) -> tuple[str, str, str]:
    (found,) = [c for c in model.status.conditions if c.type == "ScalingActive"]
    return found.status.value, found.reason, found.message


def test_the_condition_says_what_drives_scaling_and_events_mark_missing_reports() -> None:
    model = chat_model(metric="waiting", target=1)
    stored = (RevisionRef("chat-r1", 1, revision_digest(model.spec)),)
    memory, born = DemandMemory(), NOW - timedelta(hours=1)

    def passed(at: datetime, reading: Reading, current: int = 2) -> list[str]:
        demand = memory.observe("chat-r1", 3, at, at, born, reading)
        decided = plan(model, Observed(stored, replicas(current), demand), at)
        model.status = decided.plan.status
        return [e.reason for e in decided.events if e.reason.startswith("ScalingMetric")]

    assert passed(NOW, Reading(5.0, "", 2)) == []
    assert condition_of(model) == (
        "True", "MetricReported",
        "scaling on waiting reported by the replicas, target 1 per replica",
    )  # fmt: skip
    gone = Reading(None, "the replicas' latest report is 9s old (stale after 5s)", 2)
    later = NOW + timedelta(seconds=10)
    assert passed(later, gone) == ["ScalingMetricMissing"]
    assert condition_of(model) == (
        "False", "MetricMissing",
        "the replicas' latest report is 9s old (stale after 5s); scaling on in-flight "
        "requests (targetInFlight 4) meanwhile",
    )  # fmt: skip
    assert passed(later + timedelta(seconds=1), gone) == []  # said once
    assert passed(later + timedelta(seconds=2), Reading(1.0, "", 2)) == ["ScalingMetricReported"]
    nothing = Reading(None, "no ready replica to report waiting")
    assert passed(later + timedelta(seconds=3), nothing, current=0) == []  # no replica: nothing
    assert condition_of(model)[:2] == ("False", "NoReadyReplicas")


def test_models_scaled_on_in_flight_carry_no_scaling_condition() -> None:
    model = chat_model()
    stored = (RevisionRef("chat-r1", 1, revision_digest(model.spec)),)
    demand = DemandMemory().observe("chat-r1", 3, NOW, NOW)
    decided = plan(model, Observed(stored, replicas(1), demand), NOW)
    assert [c.type for c in decided.plan.status.conditions if c.type == "ScalingActive"] == []
