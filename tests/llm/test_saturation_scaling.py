"""Autoscaling on saturation with real replicas: the tiny llama.cpp chat model, one slot per
replica, under concurrent chats through `modelplane up`'s gateway. Its replicas' waiting lists
(read from their /metrics) scale it out, where in-flight requests alone (targetInFlight 100)
would not."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.llm.conftest import chatting, scaled_on_waiting
from tests.platform.conftest import Platform, running_in, wait_for


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    yield from running_in(tmp_path_factory, "saturation")


def ready_replicas(platform: Platform, name: str) -> int:
    revisions = platform.model(name).get("status", {}).get("revisions") or []
    return sum(r.get("readyReplicas", 0) for r in revisions)


def test_concurrent_chats_scale_out_on_waiting_requests(platform: Platform, llm_dir: Path) -> None:
    path = llm_dir / "busy-chat.yaml"
    path.write_text(scaled_on_waiting(llm_dir, "busy-chat"))
    applied = platform.cli("apply", "-f", str(path))
    assert applied.returncode == 0, applied.stderr
    platform.wait_condition("busy-chat", "Ready", "True", timeout=90)
    # Idle, its one replica reports an empty waiting list: the reported metric drives scaling.
    platform.wait_condition("busy-chat", "ScalingActive", "True", "MetricReported", timeout=30)
    assert ready_replicas(platform, "busy-chat") == 1
    # One slot, four chats: three wait, against a target of one per replica.
    with chatting(f"{platform.gateway}/v1", "busy-chat", clients=4) as answered:
        wait_for(lambda: ready_replicas(platform, "busy-chat") == 2, "a second ready replica", 60)
    assert answered  # the chats were served throughout
    described = platform.cli("describe", "mdl", "busy-chat")
    assert "target 1 waiting (as the replicas report) each" in described.stdout
    assert "MetricReported" in described.stdout
