"""Autoscaling on saturation with real replicas: the tiny llama.cpp chat model, one slot per
replica, under concurrent chats through `modelplane up`'s gateway. Its replicas' waiting lists
(read from their /metrics) scale it out, where in-flight requests alone (targetInFlight 100)
would not."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tests.llm.conftest import openai_client
from tests.platform.conftest import Platform, running_in, wait_for

EXAMPLE_SCALING = "  scaling:\n    minReplicas: 1\n    maxReplicas: 2\n"
SATURATION = """\
  scaling:
    minReplicas: 1
    maxReplicas: 2
    metric: waiting
    target: 1
    targetInFlight: 100
  runtime:
    parameters: {parallel: "1", maxWaiting: "32"}
"""
CLIENTS = 4
CHAT = [{"role": "user", "content": "Tell me a long story about the sea."}]


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    yield from running_in(tmp_path_factory, "saturation")


def chat_until(client: openai.OpenAI, ended: threading.Event, answered: list[int]) -> None:
    while not ended.is_set():
        client.chat.completions.create(model="busy-chat", messages=CHAT, max_tokens=128)
        answered.append(1)


def replicas_of(platform: Platform, name: str) -> int:
    revisions = platform.model(name).get("status", {}).get("revisions") or []
    return sum(r.get("readyReplicas", 0) for r in revisions)


def test_concurrent_chats_scale_out_on_waiting_requests(platform: Platform, llm_dir: Path) -> None:
    text = (llm_dir / "chat.yaml").read_text().replace("name: tiny-chat", "name: busy-chat")
    assert EXAMPLE_SCALING in text
    path = llm_dir / "busy-chat.yaml"
    path.write_text(text.replace(EXAMPLE_SCALING, SATURATION))
    applied = platform.cli("apply", "-f", str(path))
    assert applied.returncode == 0, applied.stderr
    platform.wait_condition("busy-chat", "Ready", "True", timeout=90)
    # Idle, its one replica reports an empty waiting list: the reported metric drives scaling.
    active = platform.wait_condition("busy-chat", "ScalingActive", "True", timeout=30)
    assert active["reason"] == "MetricReported"
    assert replicas_of(platform, "busy-chat") == 1
    client = openai_client(f"{platform.gateway}/v1")
    ended, answered = threading.Event(), list[int]()
    threads = [
        threading.Thread(target=chat_until, args=(client, ended, answered)) for _ in range(CLIENTS)
    ]
    for thread in threads:
        thread.start()
    try:
        # One slot, four chats: three wait, against a target of one per replica.
        wait_for(lambda: replicas_of(platform, "busy-chat") == 2, "a second ready replica", 60)
    finally:
        ended.set()
        for thread in threads:
            thread.join(timeout=60)
    assert answered  # the chats were served throughout
    described = platform.cli("describe", "mdl", "busy-chat")
    assert "target 1 waiting (as the replicas report) each" in described.stdout
    assert "MetricReported" in described.stdout
