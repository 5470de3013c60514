"""The example LLMs applied to `modelplane up` and used through its gateway with the official
``openai`` client, as the README's tour does."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import openai
import pytest

from tests.llm.conftest import chat_variant, openai_client
from tests.platform.conftest import Platform, wait_for
from tests.processes import scraped

HELLO = [{"role": "user", "content": "What is the weather like?"}]


@pytest.fixture(scope="module")
def platform(
    llm_dir: Path, iris_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Platform]:
    root = tmp_path_factory.mktemp("llm-platform")
    # Flow control off: a saturated model's refusal reaches the client (test_flow_control.py
    # has the waiting room).
    running = Platform(root / "state", root / "up.log", options=("--flow-max-waiting", "0"))
    try:
        for manifest in (llm_dir / "chat.yaml", llm_dir / "embedding.yaml", iris_dir / "iris.yaml"):
            applied = running.cli("apply", "-f", str(manifest))
            assert applied.returncode == 0, applied.stderr
        for name in ("tiny-chat", "tiny-embed", "iris"):
            running.wait_condition(name, "Ready", "True", timeout=90)
        yield running
    finally:
        running.stop()


@pytest.fixture
def gateway(platform: Platform) -> openai.OpenAI:
    return openai_client(f"{platform.gateway}/v1")


def runtime_metric(platform: Platform, revision: str, name: str, pid: int | None = None) -> float:
    """A metric of a replica of ``revision`` (its only one, or ``pid``), read from the replica."""
    if pid is None:
        (pid,) = platform.replica_pids(revision)
    args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    port = int(args[args.index(b"--port") + 1])
    return scraped(f"http://127.0.0.1:{port}", name)


def test_models_lists_the_models_that_speak_the_api(
    platform: Platform, gateway: openai.OpenAI
) -> None:
    assert sorted(m.id for m in gateway.models.list().data) == ["tiny-chat", "tiny-embed"]
    assert gateway.models.retrieve("default/tiny-chat").id == "tiny-chat"
    with pytest.raises(openai.NotFoundError):
        gateway.models.retrieve("nowhere")
    # Status shows where to reach each: the API's base for a chat model, v2 for the others.
    assert platform.model("tiny-chat")["status"]["url"] == f"{platform.gateway}/v1"
    assert platform.model("tiny-embed")["status"]["url"].endswith("/v2/models/tiny-embed")
    with pytest.raises(openai.NotFoundError) as v2_only:  # not among the API's models
        gateway.chat.completions.create(model="iris", messages=HELLO)
    assert "use /v2/models/iris/infer" in v2_only.value.message


def test_chat_through_the_gateway_whole_and_streamed(gateway: openai.OpenAI) -> None:
    raw = gateway.chat.completions.with_raw_response.create(
        model="tiny-chat", messages=HELLO, max_tokens=16, temperature=0
    )
    assert raw.headers["x-modelplane-revision"] == "tiny-chat-r1"
    whole = raw.parse()
    stream = gateway.chat.completions.create(
        model="tiny-chat",
        messages=HELLO,
        max_tokens=16,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens == whole.usage.total_tokens  # type: ignore[union-attr]


def test_namespaced_model_names_reach_the_same_model(gateway: openai.OpenAI) -> None:
    answer = gateway.completions.create(model="default/tiny-chat", prompt="Hello", max_tokens=4)
    assert answer.model == "default/tiny-chat"
    assert answer.usage is not None
    assert answer.usage.completion_tokens >= 1


def test_embeddings_through_the_gateway(gateway: openai.OpenAI) -> None:
    answer = gateway.embeddings.create(model="tiny-embed", input=["sunny", "rain"])
    vectors = np.array([d.embedding for d in answer.data])
    assert vectors.shape == (2, 64)


def test_gateway_errors_take_the_api_shape(platform: Platform, gateway: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as unknown:
        gateway.chat.completions.create(model="gpt-5", messages=HELLO)
    assert "not served by this gateway" in unknown.value.message
    reply = httpx.post(f"{platform.gateway}/v1/chat/completions", json={"messages": HELLO})
    assert reply.status_code == 400
    assert reply.json()["error"]["param"] == "model"
    with pytest.raises(openai.BadRequestError) as invalid:  # the runtime's own refusal, relayed
        gateway.chat.completions.create(model="tiny-chat", messages=HELLO, max_tokens=100_000)
    assert "at most 1024 tokens" in invalid.value.message


def test_leaving_a_stream_at_the_gateway_stops_generation_at_the_replica(
    platform: Platform,
) -> None:
    name = "modelplane_runtime_generation_tokens_total"
    body = {"model": "tiny-chat", "prompt": "Tell me a story", "max_tokens": 1024, "seed": 3}
    whole = httpx.post(f"{platform.gateway}/v1/completions", json=body, timeout=60).json()
    assert whole["usage"]["completion_tokens"] == 1024  # left alone, it writes them all
    before = runtime_metric(platform, "tiny-chat-r1", name)
    body["stream"] = True
    with httpx.stream("POST", f"{platform.gateway}/v1/completions", json=body) as reply:
        assert reply.status_code == 200
        next(reply.iter_lines())
    running = "modelplane_runtime_generation_requests_running"
    deadline = time.monotonic() + 10
    while runtime_metric(platform, "tiny-chat-r1", running) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert runtime_metric(platform, "tiny-chat-r1", running) == 0
    assert runtime_metric(platform, "tiny-chat-r1", name) - before < 1024


def test_chat_cli_streams_answers_and_keeps_the_conversation(platform: Platform) -> None:
    one = platform.cli("chat", "tiny-chat", "-m", "Hello", "--max-tokens", "6")
    assert one.returncode == 0, one.stderr
    assert one.stdout.strip()
    conversation = platform.cli(
        "chat", "tiny-chat", "--max-tokens", "4", "--temperature", "0", stdin="Hello\nAnd you?\n"
    )
    assert conversation.returncode == 0, conversation.stderr
    assert len(conversation.stdout.strip().splitlines()) == 2  # one answer per line sent
    refused = platform.cli("chat", "tiny-chat", "-m", "Hello", "--max-tokens", "100000")
    assert refused.returncode != 0
    assert "400: max_tokens is 100000" in refused.stderr


def test_a_conversation_stays_on_one_replica_and_conversations_spread(
    platform: Platform, llm_dir: Path, gateway: openai.OpenAI
) -> None:
    manifest = (llm_dir / "chat.yaml").read_text().replace("name: tiny-chat", "name: sticky")
    manifest = manifest.replace("minReplicas: 1", "minReplicas: 2")
    (llm_dir / "sticky.yaml").write_text(manifest)
    applied = platform.cli("apply", "-f", str(llm_dir / "sticky.yaml"))
    assert applied.returncode == 0, applied.stderr
    platform.wait_condition("sticky", "Ready", "True", timeout=90)

    def both_ready() -> bool:  # routed only once ready: a ring that grows moves conversations
        revisions = platform.model("sticky")["status"].get("revisions", [])
        return bool(revisions) and revisions[0].get("readyReplicas") == 2

    wait_for(both_ready, "two ready replicas", 60)

    def served() -> list[float]:
        requests = "modelplane_runtime_request_duration_seconds_count"
        return [
            runtime_metric(platform, "sticky-r1", requests, pid)
            for pid in platform.replica_pids("sticky-r1")
        ]

    def converse(opening: str, turns: int) -> None:
        history: list[Any] = [{"role": "user", "content": opening}]
        for _ in range(turns):
            answer = gateway.chat.completions.create(model="sticky", messages=history, max_tokens=4)
            history += [
                answer.choices[0].message.model_dump(),
                {"role": "user", "content": "Go on"},
            ]

    before = served()
    converse("Tell me a story about a small robot who paints the sky.", turns=5)
    moved = [after - b for after, b in zip(served(), before, strict=True)]
    assert sorted(moved) == [0, 5]  # every turn on the replica that holds the conversation
    before = served()
    for i in range(12):
        converse(f"Conversation number {i}: what is the weather like today?", turns=1)
    spread = [after - b for after, b in zip(served(), before, strict=True)]
    assert min(spread) >= 2  # different conversations land on both replicas


def test_tokens_per_minute_quota_charges_what_answers_used(
    platform: Platform, llm_dir: Path, gateway: openai.OpenAI
) -> None:
    manifest = chat_variant(llm_dir, "budgeted", "")
    text = manifest.read_text().replace("name: budgeted", "name: budgeted\n  namespace: team-t")
    manifest.write_text(text)
    assert platform.cli("apply", "-f", str(manifest)).returncode == 0
    wait_for(lambda: _ready(platform, "team-t/budgeted"), "team-t/budgeted Ready", 90)
    budget = 60
    assert platform.cli("quota", "set", "team-t", "--tpm", str(budget)).returncode == 0
    used: list[int] = []
    started = time.monotonic()
    try:
        # A stream first: charged by the runtime's closing usage comment.
        stream = gateway.chat.completions.create(
            model="team-t/budgeted", messages=HELLO, max_tokens=12, stream=True,
            stream_options={"include_usage": True},
        )  # fmt: skip
        used += [c.usage.total_tokens for c in stream if c.usage is not None]
        refused = None
        for _ in range(10):
            try:
                whole = gateway.chat.completions.create(
                    model="team-t/budgeted", messages=HELLO, max_tokens=12
                )
            except openai.RateLimitError as exc:
                refused = exc
                break
            assert whole.usage is not None
            used.append(whole.usage.total_tokens)
        assert refused is not None, f"never refused after {used}"
        # Admitted while the budget was not spent; refused once it was (the budget refills at
        # one token a second meanwhile).
        refilled = time.monotonic() - started
        assert sum(used[:-1]) < budget + refilled
        assert sum(used) >= budget
        assert "tokens per minute" in refused.message
        assert int(refused.response.headers["retry-after"]) >= 1
        # Another namespace's model is not held back by team-t's budget.
        other = gateway.chat.completions.create(model="tiny-chat", messages=HELLO, max_tokens=4)
        assert other.choices[0].message.content is not None
    finally:
        platform.cli("quota", "clear", "team-t")


def _ready(platform: Platform, key: str) -> bool:
    namespace, name = key.split("/")
    url = f"{platform.api}/apis/modelplane.io/v1alpha1/namespaces/{namespace}/models/{name}"
    conditions = httpx.get(url).json().get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


CROWDED = """\
  generation:
    maxTokens: 4096
    contextLength: 4096
    timeoutSeconds: 60
  runtime:
    parameters: {parallel: "2", maxWaiting: "0"}
"""


def test_a_full_engine_is_passed_over_for_a_replica_with_room_then_its_refusal_stands(
    platform: Platform, llm_dir: Path
) -> None:
    """Two slots per replica and no waiting list: a request the balancer sends to a full
    replica is asked again of the other; with both full, the client gets the engine's 429 and
    Retry-After, whole and streamed."""
    manifest = chat_variant(llm_dir, "crowded", CROWDED)
    manifest.write_text(manifest.read_text().replace("minReplicas: 1", "minReplicas: 2"))
    applied = platform.cli("apply", "-f", str(manifest))
    assert applied.returncode == 0, applied.stderr

    def both_ready() -> bool:
        revisions = platform.model("crowded")["status"].get("revisions", [])
        return bool(revisions) and revisions[0].get("readyReplicas") == 2

    wait_for(both_ready, "two ready replicas", 90)
    url = f"{platform.gateway}/v1/completions"
    asked = iter(range(1000))

    def both_routed() -> bool:
        """Each replica has answered the gateway (a new prompt goes to the idler one)."""
        hello = {"model": "crowded", "prompt": f"Hello {next(asked)}", "max_tokens": 1}
        assert httpx.post(url, json=hello, timeout=60).status_code == 200
        pids = platform.replica_pids("crowded-r1")
        answered = "modelplane_runtime_prompt_tokens_total"
        return all(runtime_metric(platform, "crowded-r1", answered, pid) > 0 for pid in pids)

    wait_for(both_routed, "both replicas routed by the gateway", 60)
    # Long enough to hold a slot throughout (this seed's story ends no sooner); one prompt, so
    # the balancer sends each to the replica that holds it until that one is full.
    long = {"model": "crowded", "prompt": "Tell me a story", "max_tokens": 4000, "seed": 3,
            "stream": True}  # fmt: skip
    short = {"model": "crowded", "prompt": "Tell me a story", "max_tokens": 8}
    running = "modelplane_runtime_generation_requests_running"
    held = []  # each stream's reader: one dropped would close its stream
    with httpx.Client(timeout=60) as client, contextlib.ExitStack() as streams:
        for _ in range(4):
            stream = streams.enter_context(client.stream("POST", url, json=long))
            assert stream.status_code == 200, stream.read()
            held.append(stream.iter_lines())
            next(held[-1])  # generating
        generating = [runtime_metric(platform, "crowded-r1", running, pid)
                      for pid in platform.replica_pids("crowded-r1")]  # fmt: skip
        assert generating == [2, 2]  # the third and fourth were passed over to the other
        for body in (short, {**short, "stream": True}):
            full = client.post(url, json=body)
            assert full.status_code == 429, full.text
            assert int(full.headers["retry-after"]) >= 1
            assert full.headers["x-modelplane-revision"] == "crowded-r1"
            assert "every slot (2) is generating" in full.json()["error"]["message"]
    retried = scraped(
        platform.gateway, "modelplane_gateway_retries_total", {"model": "default/crowded"}
    )
    assert retried >= 4  # the third and fourth streams, then the refused pair
    assert platform.cli("delete", "model", "crowded").returncode == 0
