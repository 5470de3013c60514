"""The OpenAI API of one runtime serving a GGUF model through llama.cpp, spoken to by the official
``openai`` client and by raw HTTP where the client would hide what is on the wire."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.llm.conftest import chat_variant, openai_client
from tests.processes import RuntimeProcess, scraped

GREEDY = {"temperature": 0.0, "seed": 1}
HELLO = [{"role": "user", "content": "Hello, how are you today?"}]


def client(runtime: RuntimeProcess) -> openai.OpenAI:
    return openai_client(f"{runtime.url}/v1")


def metric(runtime: RuntimeProcess, name: str) -> float:
    return scraped(runtime.url, name)


@pytest.fixture
def limited_runtime(
    llm_dir: Path, start_runtime: object, request: pytest.FixtureRequest
) -> Iterator[RuntimeProcess]:
    name, generation = request.param
    runtime = start_runtime("-f", str(chat_variant(llm_dir, name, generation)))  # type: ignore[operator]
    runtime.wait_ready()
    return runtime


def test_models_lists_the_served_model(chat_runtime: RuntimeProcess) -> None:
    models = client(chat_runtime).models.list()
    assert [m.id for m in models.data] == ["tiny-chat"]
    assert client(chat_runtime).models.retrieve("tiny-chat").id == "tiny-chat"
    with pytest.raises(openai.NotFoundError):
        client(chat_runtime).models.retrieve("llama-70b")


def test_chat_completion_has_the_api_shape_and_counts_tokens(chat_runtime: RuntimeProcess) -> None:
    answer = client(chat_runtime).chat.completions.create(
        model="tiny-chat", messages=HELLO, max_tokens=12, **GREEDY
    )
    assert answer.object == "chat.completion"
    assert answer.id.startswith("chatcmpl-")
    assert answer.model == "tiny-chat"
    choice = answer.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content
    assert choice.finish_reason in {"stop", "length"}
    usage = answer.usage
    assert usage is not None
    # The ChatML prompt of one short user turn is more than its words, and fits the context.
    assert 10 < usage.prompt_tokens < 100
    assert 1 <= usage.completion_tokens <= 12
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    if choice.finish_reason == "length":
        assert usage.completion_tokens == 12


def test_greedy_decoding_is_repeatable_and_length_is_reported(chat_runtime: RuntimeProcess) -> None:
    ask = client(chat_runtime).chat.completions.create
    first = ask(model="tiny-chat", messages=HELLO, max_tokens=5, **GREEDY)
    second = ask(model="tiny-chat", messages=HELLO, max_tokens=5, **GREEDY)
    assert first.choices[0].message.content == second.choices[0].message.content
    assert first.choices[0].finish_reason == "length"
    assert first.usage is not None
    assert first.usage.completion_tokens == 5


def test_streamed_chat_is_the_same_text_as_a_whole_answer(chat_runtime: RuntimeProcess) -> None:
    ask = client(chat_runtime).chat.completions.create
    whole = ask(model="tiny-chat", messages=HELLO, max_tokens=20, **GREEDY)
    chunks = list(
        ask(
            model="tiny-chat",
            messages=HELLO,
            max_tokens=20,
            stream=True,
            stream_options={"include_usage": True},
            **GREEDY,
        )
    )
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert len({c.id for c in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    with_choices = [c for c in chunks if c.choices]
    text = "".join(c.choices[0].delta.content or "" for c in with_choices)
    assert text == whole.choices[0].message.content
    assert len(with_choices) > 3  # token by token, not one piece at the end
    assert with_choices[-1].choices[0].finish_reason == whole.choices[0].finish_reason
    assert all(c.choices[0].finish_reason is None for c in with_choices[:-1])
    usage = chunks[-1].usage
    assert not chunks[-1].choices
    assert usage is not None
    assert usage.completion_tokens == whole.usage.completion_tokens  # type: ignore[union-attr]


def test_sse_wire_format_ends_with_done(chat_runtime: RuntimeProcess) -> None:
    body = {"model": "tiny-chat", "messages": HELLO, "max_tokens": 4, "stream": True}
    with httpx.stream("POST", f"{chat_runtime.url}/v1/chat/completions", json=body) as reply:
        assert reply.status_code == 200
        assert reply.headers["content-type"].startswith("text/event-stream")
        events = [line for line in reply.iter_lines() if line]
    # Data events, and one SSE comment (which clients ignore) with the tokens used, for the
    # gateway's tokens-per-minute quota.
    comments = [e for e in events if e.startswith(":")]
    assert all(e.startswith("data: ") for e in events if e not in comments)
    assert len(comments) == 1
    usage = json.loads(comments[0].removeprefix(": usage "))
    assert 1 <= usage["completion_tokens"] <= 4
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert events[-1] == "data: [DONE]"


def test_completions_default_to_sixteen_tokens_and_stream(chat_runtime: RuntimeProcess) -> None:
    ask = client(chat_runtime).completions.create
    whole = ask(model="tiny-chat", prompt="The weather is", **GREEDY)
    assert whole.object == "text_completion"
    assert whole.usage is not None
    assert 1 <= whole.usage.completion_tokens <= 16
    streamed = ask(model="tiny-chat", prompt="The weather is", stream=True, **GREEDY)
    assert "".join(c.choices[0].text for c in streamed) == whole.choices[0].text


def test_stop_sequence_ends_the_answer_before_it(chat_runtime: RuntimeProcess) -> None:
    ask = client(chat_runtime).completions.create
    free = ask(model="tiny-chat", prompt="Tell me a story", max_tokens=40, **GREEDY)
    text = free.choices[0].text
    words = text.split()
    assert len(words) > 4, text
    stop = words[3]
    cut = ask(model="tiny-chat", prompt="Tell me a story", max_tokens=40, stop=[stop], **GREEDY)
    assert cut.choices[0].finish_reason == "stop"
    assert cut.choices[0].text == text[: text.index(stop)]
    assert stop not in cut.choices[0].text


def test_max_tokens_over_the_models_cap_is_refused_with_the_numbers(
    chat_runtime: RuntimeProcess,
) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        client(chat_runtime).chat.completions.create(
            model="tiny-chat", messages=HELLO, max_tokens=10_000
        )
    error = refused.value.body
    assert isinstance(error, dict)
    assert "10000" in error["message"]
    assert "1024" in error["message"]
    assert error["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    "limited_runtime", [("short-context", "  generation:\n    contextLength: 64\n")], indirect=True
)
def test_a_prompt_beyond_the_context_is_refused_and_the_model_keeps_serving(
    limited_runtime: RuntimeProcess,
) -> None:
    ask = client(limited_runtime).chat.completions.create
    long = [{"role": "user", "content": "the weather is sunny and warm " * 40}]
    with pytest.raises(openai.BadRequestError) as refused:
        ask(model="short-context", messages=long)
    assert "context length is 64" in refused.value.message
    with pytest.raises(openai.BadRequestError) as too_many:
        ask(model="short-context", messages=HELLO, max_tokens=60)
    assert "exceeds this model's context length of 64" in too_many.value.message
    assert ask(model="short-context", messages=HELLO, max_tokens=3).choices[0].message.content


@pytest.mark.parametrize(
    ("body", "param", "fragment"),
    [
        ({"model": "tiny-chat"}, "messages", "Field required"),
        ({"model": "tiny-chat", "messages": HELLO, "n": 2}, "n", "only n=1"),
        ({"model": "tiny-chat", "messages": HELLO, "temperature": 3}, "temperature", "2"),
        ({"model": "tiny-chat", "messages": [{"role": "wizard", "content": "x"}]}, None, "role"),
        ({"model": "tiny-chat", "messages": HELLO, "max_tokens": 0}, "max_tokens", "1"),
    ],
)
def test_malformed_requests_get_the_api_error_object(
    chat_runtime: RuntimeProcess, body: dict[str, object], param: str | None, fragment: str
) -> None:
    reply = httpx.post(f"{chat_runtime.url}/v1/chat/completions", json=body)
    assert reply.status_code == 400
    error = reply.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    assert fragment in error["message"]
    if param is not None:
        assert error["param"] == param


def test_invalid_json_unknown_model_and_wrong_task(chat_runtime: RuntimeProcess) -> None:
    url = f"{chat_runtime.url}/v1"
    reply = httpx.post(f"{url}/chat/completions", content=b"{not json")
    assert reply.status_code == 400
    assert "not valid JSON" in reply.json()["error"]["message"]
    with pytest.raises(openai.NotFoundError):
        client(chat_runtime).chat.completions.create(model="gpt-5", messages=HELLO)
    with pytest.raises(openai.BadRequestError) as wrong:
        client(chat_runtime).embeddings.create(model="tiny-chat", input="hello")
    assert "needs an embedding model" in wrong.value.message


def test_a_client_that_leaves_mid_stream_stops_the_generation(
    chat_runtime: RuntimeProcess,
) -> None:
    body = {"model": "tiny-chat", "prompt": "Tell me a story", "max_tokens": 1024, "seed": 3}
    # Left alone, this (seeded) generation writes all 1024 tokens.
    whole = httpx.post(f"{chat_runtime.url}/v1/completions", json=body, timeout=60).json()
    assert whole["usage"]["completion_tokens"] == 1024
    before = metric(chat_runtime, "modelplane_runtime_generation_tokens_total")
    url = f"{chat_runtime.url}/v1/completions"
    with httpx.stream("POST", url, json={**body, "stream": True}) as reply:
        next(reply.iter_lines())
    deadline = time.monotonic() + 10
    while metric(chat_runtime, "modelplane_runtime_generation_requests_running") and (
        time.monotonic() < deadline
    ):
        time.sleep(0.05)
    assert metric(chat_runtime, "modelplane_runtime_generation_requests_running") == 0
    generated = metric(chat_runtime, "modelplane_runtime_generation_tokens_total") - before
    assert generated < 1024
    # The model is free again at once.
    answer = client(chat_runtime).completions.create(model="tiny-chat", prompt="Hi", max_tokens=3)
    assert answer.usage is not None
    assert answer.usage.completion_tokens >= 1


@pytest.mark.parametrize(
    "limited_runtime",
    [("impatient", "  generation:\n    maxTokens: 2000\n    timeoutSeconds: 0.01\n")],
    indirect=True,
)
def test_generation_past_its_timeout_is_stopped_with_an_error(
    limited_runtime: RuntimeProcess,
) -> None:
    ask = client(limited_runtime).completions.create
    long = {"model": "impatient", "prompt": "Tell me a story", "max_tokens": 2000, "stop": "\x00"}
    with pytest.raises(openai.APIStatusError) as timed_out:
        ask(**long, temperature=1.0, seed=5)  # type: ignore[call-overload]
    assert timed_out.value.status_code == 504
    assert "timeout of 0.01s" in timed_out.value.message
    with pytest.raises(openai.APIError) as mid_stream:
        for _ in ask(**long, temperature=1.0, seed=5, stream=True):  # type: ignore[call-overload]
            pass
    assert "timeout" in str(mid_stream.value)


def test_queued_requests_are_counted_waiting_then_served(chat_runtime: RuntimeProcess) -> None:
    results: list[int] = []

    def ask() -> None:
        answer = client(chat_runtime).completions.create(
            model="tiny-chat", prompt="Tell me a story", max_tokens=200, temperature=1.0
        )
        results.append(answer.usage.completion_tokens if answer.usage else 0)

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(results) == 4
    assert all(n >= 1 for n in results)
    assert metric(chat_runtime, "modelplane_runtime_generation_requests_waiting") == 0
    assert metric(chat_runtime, "vllm:num_requests_running") == 0
    assert metric(chat_runtime, "modelplane_runtime_time_to_first_token_seconds_count") >= 4
