"""Rollouts of chat models, judged as generated text is: a canary slow to its first token is
rolled back on that, with the numbers on status; shadow traffic compares OpenAI API answers by a
measure that fits them, named on status. Real `modelplane up`, real llama.cpp models."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ROOT
from tests.llm.conftest import openai_client
from tests.platform.conftest import Platform, wait_for

# A long prompt: reading it is most of the time to the first token.
PROMPT = " ".join(["Tell me a story about a small robot who learned to paint the sky."] * 24)
MESSAGES = [{"role": "user", "content": PROMPT}]


def made(out: Path, *args: str) -> Path:
    """A chat model from the example script (``args``: --seed, --embedding, --layers)."""
    script = ROOT / "examples" / "llm" / "make_models.py"
    subprocess.run([sys.executable, str(script), "--out", str(out), *args], check=True,
                   capture_output=True)  # fmt: skip
    return out / "chat.yaml"


def manifest(made_by: Path, name: str, rollout: str) -> str:
    text = made_by.read_text().replace("name: tiny-chat", f"name: {name}")
    return text + rollout


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    root = tmp_path_factory.mktemp("generative-canary")
    running = Platform(root / "state", root / "up.log")
    try:
        yield running
    finally:
        running.stop()


def apply(platform: Platform, path: Path, text: str) -> None:
    path.write_text(text)
    applied = platform.cli("apply", "-f", str(path))
    assert applied.returncode == 0, applied.stderr


def rollout_of(platform: Platform, name: str) -> dict[str, Any]:
    found: dict[str, Any] = platform.model(name).get("status", {}).get("rollout") or {}
    return found


def send_until(platform: Platform, name: str, ended: threading.Event, **request: Any) -> None:
    """Requests for ``name`` through the gateway, one after another, until ``ended`` (or 600).
    Each prompt starts differently, so no engine reads it from a cached prefix."""
    client = openai_client(f"{platform.gateway}/v1")
    asked = request
    for number in range(600):
        if ended.is_set():
            return
        if "messages" in asked:
            first = asked["messages"][0]
            fresh = {**first, "content": f"{number}: {first['content']}"}
            request = {**asked, "messages": [fresh, *asked["messages"][1:]]}
        if request.get("stream"):
            for _chunk in client.chat.completions.create(model=name, **request):
                pass
        else:
            client.chat.completions.create(model=name, **request)


def roll_out(platform: Platform, name: str, request: dict[str, Any]) -> dict[str, Any]:
    """Send ``request`` until the rollout ends; its status then."""
    ended = threading.Event()
    sender = threading.Thread(target=send_until, args=(platform, name, ended), kwargs=request)
    sender.start()
    try:
        wait_for(
            lambda: rollout_of(platform, name).get("phase") in ("RolledBack", "Promoted"),
            "the rollout to end",
            180,
        )
    finally:
        ended.set()
        sender.join(timeout=60)
    return rollout_of(platform, name)


def start_canary(
    platform: Platform, name: str, stable: Path, canary: Path, analysis: str, tmp_path: Path
) -> None:
    """``stable``'s model serving as ``name``, then ``canary``'s applied and rolling out."""
    apply(platform, tmp_path / "stable.yaml", manifest(stable, name, analysis))
    platform.wait_condition(name, "Ready", "True", timeout=90)
    apply(platform, tmp_path / "canary.yaml", manifest(canary, name, analysis))
    wait_for(lambda: rollout_of(platform, name).get("phase") == "Progressing",
             "the canary's rollout", 90)  # fmt: skip


def verdicts(rollout: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["name"]: m for m in rollout["lastAnalysis"]["metrics"]}


def test_a_chat_canary_slow_to_its_first_token_is_rolled_back_on_it(
    platform: Platform, tmp_path: Path
) -> None:
    analysis = """\
  rollout:
    steps: [{weight: 50, pauseSeconds: 2}]
    analysis: {minRequests: 10, maxTimeToFirstTokenP99Ms: 150,
               maxTimePerOutputTokenP99Ms: 60000, shadowPercent: 0}
"""
    stable = made(tmp_path / "fast", "--seed", "7")

    heavy = made(tmp_path / "heavy", "--seed", "7", "--embedding", "384", "--layers", "8")
    start_canary(platform, "slowstart", stable, heavy, analysis, tmp_path)

    ended = roll_out(platform, "slowstart", {"messages": MESSAGES, "max_tokens": 8,
                                             "stream": True})  # fmt: skip
    assert ended["phase"] == "RolledBack", ended
    found = verdicts(ended)
    # The canary reads the long prompt far slower than 150 ms, whatever the machine's load.
    first_token = found["timeToFirstTokenP99Ms"]
    assert not first_token["passed"]
    assert first_token["value"] > first_token["threshold"] == 150
    assert "timeToFirstTokenP99Ms " in ended["lastAnalysis"]["message"]
    assert "timeToFirstTokenP99MsVsStable" in found  # and against the stable revision
    assert "timePerOutputTokenP99Ms" in found  # measured too, from the streams' usage
    assert "latencyP99Ms" not in found  # a whole generation's p99 judges no chat model
    status = platform.model("slowstart")["status"]
    assert status["stableRevision"] == "slowstart-r1"
    asked = {"model": "slowstart", "messages": MESSAGES, "max_tokens": 4}
    reply = httpx.post(f"{platform.gateway}/v1/chat/completions", json=asked, timeout=30)
    assert reply.status_code == 200
    assert reply.headers["x-modelplane-revision"] == "slowstart-r1"


def test_shadowed_chat_answers_are_compared_by_exact_match_when_greedy_with_a_seed(
    platform: Platform, tmp_path: Path
) -> None:
    analysis = """\
  rollout:
    steps: [{weight: 20, pauseSeconds: 2}]
    analysis: {minRequests: 5, maxDisagreement: 0.2, shadowPercent: 100,
               maxTimeToFirstTokenP99Ms: 60000, maxTimePerOutputTokenP99Ms: 60000}
"""
    stable = made(tmp_path / "seven", "--seed", "7")
    other = made(tmp_path / "eight", "--seed", "8")  # other weights: other words
    start_canary(platform, "shadowed", stable, other, analysis, tmp_path)

    greedy = {"messages": MESSAGES[:1], "max_tokens": 12, "temperature": 0, "seed": 1}
    ended = roll_out(platform, "shadowed", greedy)
    assert ended["phase"] == "RolledBack", ended
    disagreement = verdicts(ended)["disagreement"]
    assert disagreement["measure"] == "exact match"
    assert disagreement["value"] > 0.2
    assert not disagreement["passed"]
