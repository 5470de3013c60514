"""Fair flow control through `modelplane up`'s gateway, with a real llama.cpp replica of the tiny
chat model that has one slot: while a long stream holds the slot, other requests wait in the
gateway's waiting room (four places, six seconds at most), and when the slot frees they are
served interactive first, namespaces in turn; a full room sheds the lowest priority with 429."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.llm.conftest import chat_variant
from tests.platform.conftest import Platform, running_in, wait_for
from tests.processes import scraped

MODEL = "flowing"
ONE_SLOT = """\
  generation:
    maxTokens: 4096
    contextLength: 4096
    timeoutSeconds: 120
  runtime:
    parameters: {parallel: "1", maxWaiting: "0"}
"""
# No waiting list in the replica: one the gateway sent to while its report was stale (a late
# poll on a loaded machine) is refused and held again, so the gateway's room is the only queue.
WAITING = "modelplane_gateway_flow_waiting_requests"
SHED = "modelplane_gateway_flow_shed_requests_total"
MAX_WAIT = 6.0


@pytest.fixture(scope="module")
def platform(llm_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    options = ("--flow-max-waiting", "4", "--flow-max-wait", str(MAX_WAIT))
    for running in running_in(tmp_path_factory, "flow", options=options):
        applied = running.cli("apply", "-f", str(chat_variant(llm_dir, MODEL, ONE_SLOT)))
        assert applied.returncode == 0, applied.stderr
        running.wait_condition(MODEL, "Ready", "True", timeout=90)
        set_quota = running.cli("quota", "set", "batch-team", "--priority", "batch")
        assert set_quota.returncode == 0, set_quota.stderr
        yield running


def waiting(platform: Platform, priority: str | None = None) -> float:
    labels = {"model": f"default/{MODEL}"} | ({"priority": priority} if priority else {})
    return scraped(platform.gateway, WAITING, labels, default=0)


def shed(platform: Platform, reason: str) -> float:
    labels = {"model": f"default/{MODEL}", "reason": reason}
    return scraped(platform.gateway, SHED, labels, default=0)


@contextlib.contextmanager
def slot_taken(platform: Platform) -> Iterator[None]:
    """A long stream holds the replica's one slot until the block ends (the stream closed)."""
    body = {"model": MODEL, "prompt": "Tell me a story", "max_tokens": 4000, "seed": 3,
            "stream": True}  # fmt: skip
    with (
        httpx.Client(timeout=120) as client,
        client.stream("POST", f"{platform.gateway}/v1/completions", json=body) as stream,
    ):
        assert stream.status_code == 200, stream.read()
        lines = stream.iter_lines()
        next(lines)  # generating
        yield


class Sent:
    """Short completions sent in threads, each as a tenant: their statuses and end order."""

    def __init__(self, platform: Platform) -> None:
        self.url = f"{platform.gateway}/v1/completions"
        self.threads: list[threading.Thread] = []
        self.finished: list[str] = []
        self.replies: dict[str, httpx.Response] = {}

    def send(
        self, name: str, tenant: str, timeout: float = 60, long: bool = False, stream: bool = False
    ) -> None:
        """``long``: as long an answer as the slot-holding stream's; ``stream``: streamed."""
        headers = {"X-Modelplane-Tenant": tenant}
        body: dict[str, Any] = {"model": MODEL, "prompt": "Hello", "max_tokens": 4,
                                "temperature": 0, "stream": stream}  # fmt: skip
        if long:
            body = {"model": MODEL, "prompt": "Tell me a story", "max_tokens": 4000, "seed": 3}

        def run() -> None:
            with contextlib.suppress(httpx.TimeoutException):
                self.replies[name] = httpx.post(self.url, json=body, headers=headers,
                                                timeout=timeout)  # fmt: skip
            self.finished.append(name)

        thread = threading.Thread(target=run)
        thread.start()
        self.threads.append(thread)

    def join(self) -> None:
        for thread in self.threads:
            thread.join(timeout=60)

    def status(self, name: str) -> int:
        return self.replies[name].status_code

    def message(self, name: str) -> Any:
        return self.replies[name].json()["error"]["message"]


def test_interactive_requests_are_served_before_batch_ones_when_the_slot_frees(
    platform: Platform,
) -> None:
    sent = Sent(platform)
    with slot_taken(platform):
        for n in range(2):
            sent.send(f"batch-{n}", "batch-team")
        wait_for(lambda: waiting(platform, "batch") == 2, "two batch requests waiting", 30)
        sent.send("interactive", "default", stream=True)
        wait_for(lambda: waiting(platform, "interactive") == 1, "one interactive waiting", 30)
        assert sent.finished == []  # held, not refused
    sent.join()  # the slot freed: each is let through as the one before it ends
    assert {name: sent.status(name) for name in sent.replies} == dict.fromkeys(sent.replies, 200)
    assert sent.finished[0] == "interactive"
    assert (
        "data: [DONE]" in sent.replies["interactive"].text
    )  # its stream, relayed once let through
    assert waiting(platform) == 0


def test_a_tenant_that_is_no_namespace_name_is_refused(platform: Platform) -> None:
    body = {"model": MODEL, "prompt": "Hello", "max_tokens": 4}
    headers = {"X-Modelplane-Tenant": "Team_B"}
    refused = httpx.post(f"{platform.gateway}/v1/completions", json=body, headers=headers)
    assert refused.status_code == 400
    assert (
        "X-Modelplane-Tenant: 'Team_B' is not a namespace name"
        in refused.json()["error"]["message"]
    )


def test_namespaces_share_the_room_and_take_turns(platform: Platform) -> None:
    sent = Sent(platform)
    with slot_taken(platform):
        for n in range(4):
            sent.send(f"flood-{n}", "flood-team")
            wait_for(lambda n=n: waiting(platform) == n + 1, f"{n + 1} waiting", 30)
        for n in range(2):  # the room is full: each takes the place of the flood's newest
            sent.send(f"quiet-{n}", "quiet-team")
            wait_for(lambda n=n: len(sent.finished) == n + 1, "a flood request shed", 30)
        assert sorted(sent.finished) == ["flood-2", "flood-3"]
        for name in ("flood-2", "flood-3"):
            assert sent.status(name) == 429
            assert "more than its fair share" in sent.message(name)
    sent.join()
    # Served in turn: the quiet namespace's first comes before the flood's second.
    assert sent.finished[2:] == ["flood-0", "quiet-0", "flood-1", "quiet-1"]
    assert shed(platform, "fair_share") >= 2


def test_a_full_room_sheds_batch_first_with_429_and_retry_after(platform: Platform) -> None:
    sent = Sent(platform)
    with slot_taken(platform):
        sent.send("batch", "batch-team")
        wait_for(lambda: waiting(platform) == 1, "the batch request waiting", 30)
        for n in range(3):
            sent.send(f"interactive-{n}", "default")
            wait_for(lambda n=n: waiting(platform) == n + 2, f"{n + 2} waiting", 30)
        sent.send("late-interactive", "default")  # full: the queued batch one makes room
        wait_for(lambda: "batch" in sent.finished, "the batch request shed", 30)
        assert sent.status("batch") == 429
        assert int(sent.replies["batch"].headers["retry-after"]) >= 1
        assert "higher priority" in sent.message("batch")
        sent.send("late-batch", "batch-team")  # only interactive ones wait: refused at once
        wait_for(lambda: "late-batch" in sent.finished, "the late batch request refused", 30)
        assert sent.status("late-batch") == 429
        assert "waiting room" in sent.message("late-batch")
    sent.join()
    interactive = [f"interactive-{n}" for n in range(3)] + ["late-interactive"]
    assert [sent.status(name) for name in interactive] == [200] * 4
    assert shed(platform, "priority") >= 1
    assert shed(platform, "full") >= 1


def test_a_client_that_leaves_while_held_frees_its_place(platform: Platform) -> None:
    sent = Sent(platform)
    before = shed(platform, "disconnected")
    with slot_taken(platform):
        sent.send("impatient", "default", timeout=2)
        wait_for(lambda: "impatient" in sent.finished, "the client giving up", 30)
        wait_for(lambda: waiting(platform) == 0, "its place freed", 10)
        assert shed(platform, "disconnected") == before + 1
    sent.join()


def test_a_request_held_past_the_bound_gets_429(platform: Platform) -> None:
    """Two long answers in turn keep the slot past the bound from a batch request waiting
    behind the second."""
    sent = Sent(platform)
    with slot_taken(platform):
        sent.send("next", "default", long=True)
        wait_for(lambda: waiting(platform) == 1, "the next long answer waiting", 30)
        started = time.monotonic()
        sent.send("patient", "batch-team")
        wait_for(lambda: "patient" in sent.finished, "the bound", 30)
        held = time.monotonic() - started
    sent.join()
    assert sent.status("next") == 200
    assert sent.status("patient") == 429
    assert "stayed saturated" in sent.message("patient")
    assert held >= MAX_WAIT - 0.5
    assert shed(platform, "timeout") >= 1
