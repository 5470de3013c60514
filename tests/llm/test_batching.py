"""Continuous batching in the llama.cpp engine: requests share the model's slots, join a running
batch between steps, free their slot when their client leaves, and past a full waiting list are
refused with 429 and Retry-After. The runtime is a real process serving the tiny GGUF model with
two slots and a waiting list of one; the gauges on its /metrics say what the batch is doing.

A long request is "Tell me a story" with seed 3, which the tiny model writes for thousands of
tokens (seconds) without ending it: while it streams, the others come and go.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.llm.conftest import chat_variant
from tests.platform.conftest import wait_for
from tests.processes import RuntimeProcess, scraped, serving

BATCHED = """\
  generation:
    maxTokens: 4096
    contextLength: 4096
    timeoutSeconds: 60
  runtime:
    parameters: {parallel: "2", maxWaiting: "1"}
"""
LONG = {"model": "batched", "prompt": "Tell me a story", "max_tokens": 4000, "seed": 3}
SHORT = {"model": "batched", "prompt": "The weather is", "max_tokens": 24, "seed": 11}
RUNNING = "modelplane_runtime_generation_requests_running"
WAITING = "modelplane_runtime_generation_requests_waiting"


@pytest.fixture(scope="module")
def batched(llm_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RuntimeProcess]:
    manifest = chat_variant(llm_dir, "batched", BATCHED)
    with serving(manifest, tmp_path_factory.mktemp("batched") / "serve.log") as runtime:
        yield runtime


@pytest.fixture(autouse=True)
def _idle_after(batched: RuntimeProcess) -> Iterator[None]:
    """Each test leaves the runtime as it found it: nothing running, nothing waiting."""
    yield
    wait_for(lambda: gauge(batched, RUNNING) == gauge(batched, WAITING) == 0, "an idle model", 30)


def gauge(runtime: RuntimeProcess, name: str) -> float:
    return scraped(runtime.url, name)


def texts(lines: Iterator[str]) -> Iterator[str]:
    """The text of each completion chunk of a stream, until it ends."""
    for line in lines:
        if line.startswith("data: {"):
            yield "".join(c["text"] for c in json.loads(line[6:])["choices"])


@contextmanager
def streaming(runtime: RuntimeProcess, body: dict[str, object]) -> Iterator[Iterator[str]]:
    """A streamed completion whose first text has arrived; leaving the block leaves the stream
    (the client disconnects) if it has not ended."""
    url = f"{runtime.url}/v1/completions"
    with httpx.stream("POST", url, json={**body, "stream": True}, timeout=60) as reply:
        assert reply.status_code == 200
        pieces = texts(reply.iter_lines())
        first = next(pieces)
        yield itertools.chain([first], pieces)


def completed(runtime: RuntimeProcess, body: dict[str, object]) -> httpx.Response:
    return httpx.post(f"{runtime.url}/v1/completions", json=body, timeout=60)


def test_a_request_joins_a_running_generation_and_streams_beside_it(
    batched: RuntimeProcess,
) -> None:
    alone = completed(batched, SHORT).json()["choices"][0]["text"]
    with streaming(batched, LONG):
        with streaming(batched, SHORT) as joined:
            text = "".join(joined)
        # Its whole answer came while the long one still generates (thousands of tokens more).
        assert gauge(batched, RUNNING) == 1
        assert scraped(batched.url, "modelplane_runtime_kv_cache_usage_ratio") > 0
    # A seeded request makes the same text alone and joining a batch.
    assert text == alone


def test_seeded_streams_started_together_make_what_they_make_alone(
    batched: RuntimeProcess,
) -> None:
    bodies = [{**SHORT, "seed": seed, "max_tokens": 200} for seed in (21, 22)]
    alone = [completed(batched, body).json()["choices"][0]["text"] for body in bodies]
    together: list[str] = ["", ""]

    def ask(index: int) -> None:
        together[index] = completed(batched, bodies[index]).json()["choices"][0]["text"]

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert together == alone
    assert alone[0] != alone[1]


def test_a_client_that_leaves_frees_its_slot_for_the_next_request(
    batched: RuntimeProcess,
) -> None:
    with streaming(batched, LONG):
        with streaming(batched, LONG):
            assert gauge(batched, RUNNING) == 2
        # The stream closed by its client: its slot is free at the next step.
        wait_for(lambda: gauge(batched, RUNNING) == 1, "the left request's slot to free", 10)
        answer = completed(batched, SHORT)
        assert answer.status_code == 200
        assert answer.json()["usage"]["completion_tokens"] == 24
        assert gauge(batched, RUNNING) == 1  # served at once, beside the one still running


def test_past_a_full_waiting_list_requests_are_refused_with_retry_after(
    batched: RuntimeProcess,
) -> None:
    waited: dict[str, object] = {}

    def wait_in_line() -> None:
        with streaming(batched, SHORT) as pieces:
            waited["text"] = "".join(pieces)

    with streaming(batched, LONG), streaming(batched, LONG):
        waiter = threading.Thread(target=wait_in_line)
        waiter.start()
        wait_for(lambda: gauge(batched, WAITING) == 1, "a request waiting", 10)
        for stream in (False, True):
            refused = completed(batched, {**SHORT, "stream": stream})
            assert refused.status_code == 429
            assert int(refused.headers["retry-after"]) >= 1
            error = refused.json()["error"]
            assert error["type"] == "rate_limit_exceeded"
            assert "every slot (2) is generating" in error["message"]
            assert "maxWaiting is 1" in error["message"]
        assert gauge(batched, RUNNING) == 2
        assert gauge(batched, WAITING) == 1
    # The long ones left: the waiting request got a slot and its whole answer.
    waiter.join(timeout=30)
    assert waited["text"]
    busy = scraped(batched.url, "modelplane_runtime_requests_total", {"outcome": "busy"})
    assert busy == 2


def test_a_bad_parallel_setting_fails_the_load_with_the_reason(
    llm_dir: Path, start_runtime: object
) -> None:
    extra = '  runtime:\n    parameters: {parallel: "4", batchTokens: "2"}\n'
    manifest = chat_variant(llm_dir, "misconfigured", extra)
    runtime = start_runtime("-f", str(manifest))  # type: ignore[operator]
    assert runtime.wait_exit(timeout=60) != 0
    assert "batchTokens (2) must be at least runtime.parameters.parallel (4)" in runtime.output()
