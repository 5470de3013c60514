"""Clients that stall or leave, at the gateway and at a runtime: each is cut off within a bound
(``modelplane.connections``), nobody else waits on it meanwhile, and nothing stays in flight: no
gateway attempt, no replica request, no generation going on for a client that left."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import orjson

from modelplane.backends.local.supervisor import die_with_parent
from modelplane.connections import BODY_IDLE_SECONDS, HEAD_SECONDS, WRITE_STALL_SECONDS
from tests.dataplane.conftest import INFER, IRIS_ROW, Served
from tests.dataplane.wire import Wire, request
from tests.platform.conftest import wait_for
from tests.processes import free_port

MAX_TOKENS = 1024  # the chat example's limit: its story runs that long unless stopped
STORY = {"model": "tiny-chat", "prompt": "Tell me a story", "max_tokens": MAX_TOKENS, "seed": 3}
WHOLE = request("POST", INFER, IRIS_ROW, [("Content-Type", "application/json")])


def infer(served: Served) -> int:
    url = f"http://127.0.0.1:{served.port}{INFER}"
    headers = dict(served.json_headers())
    return httpx.post(url, content=IRIS_ROW, headers=headers, timeout=10).status_code


def trickle(wire: Wire, data: bytes, stop: threading.Event) -> threading.Thread:
    """Send ``data`` a byte every 0.5 s until ``stop`` or the server closes."""

    def run() -> None:
        for byte in data:
            if stop.wait(0.5):
                return
            try:
                wire.send(bytes([byte]))
            except OSError:
                return

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_stalled_clients_are_timed_out_while_others_are_served(served: Served) -> None:
    auth = "".join(f"{k}: {v}\r\n" for k, v in served.auth).encode()
    whole = WHOLE.replace(b"\r\n\r\n", b"\r\n" + auth + b"\r\n", 1)
    stop = threading.Event()
    half_head, half_body, trickling = (Wire(served.port) for _ in range(3))
    with half_head, half_body, trickling:
        half_head.send(whole[:40])
        half_body.send(whole[: -len(IRIS_ROW) // 2])
        trickling.send(whole[:10])
        dripping = trickle(trickling, whole[10:], stop)
        # Meanwhile others are served. At the gateway the stalled body holds no replica and no
        # upstream connection: a request is forwarded only once its body is whole. (A runtime
        # counts a request in flight from its head.)
        assert [infer(served) for _ in range(5)] == [200] * 5
        assert served.in_flight() == (0 if served.name == "gateway" else 1)
        for wire, bound in ((half_head, HEAD_SECONDS), (half_body, BODY_IDLE_SECONDS)):
            timed_out = wire.response()
            assert timed_out.status == 408
            assert f"{bound:g} s" in timed_out.json()["error"]
            assert wire.closed_by_server()
        # A head sent a byte at a time is still bound by its deadline, not reset by each byte.
        assert trickling.response().status == 408
        stop.set()
        dripping.join()
    wait_for(lambda: served.in_flight() == 0, "nothing in flight", 10)
    assert infer(served) == 200


def test_a_client_that_leaves_mid_body_leaves_nothing_behind(served: Served) -> None:
    with Wire(served.port) as wire:
        head = request("POST", INFER, IRIS_ROW, served.json_headers())
        wire.send(head[: -len(IRIS_ROW) // 2])
    wait_for(lambda: served.in_flight() == 0, "nothing in flight", 10)
    assert infer(served) == 200


def test_a_client_that_leaves_mid_stream_stops_its_generation(served: Served) -> None:
    body = orjson.dumps({**STORY, "stream": True})
    before = served.generated()
    with Wire(served.chat_port) as wire:
        wire.send(request("POST", "/v1/completions", body, served.json_headers()))
        begun = wire.begun(b"data: ")
        assert begun.status == 200
        assert b"[DONE]" not in begun.body
    wait_for(lambda: served.in_flight() == 0, "nothing in flight", 30)
    assert served.generated() - before < MAX_TOKENS  # stopped, not run to the end
    # The replica's slot is free: a whole answer comes, and the connection it left is not reused.
    url = f"http://127.0.0.1:{served.chat_port}/v1/completions"
    answer = httpx.post(url, json={**STORY, "max_tokens": 8}, headers=dict(served.auth), timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.json()["usage"]["completion_tokens"] == 8


def test_a_client_that_stops_reading_a_stream_is_cut_off(tmp_path: Path) -> None:
    """It asks for a stream and reads nothing: once the buffers between are full the server
    can write nothing, and past the bound it drops the connection, which its app sees as a
    client that left (the runtime and the gateway then stop the generation, as above)."""
    port = free_port()
    log = tmp_path / "endless.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "tests.dataplane.endless", str(port)],
            stdout=out, stderr=subprocess.STDOUT, preexec_fn=die_with_parent,
        )  # fmt: skip
    try:
        wait_for(lambda: port_open(port), "the server listening", 30)
        with Wire(port, timeout=WRITE_STALL_SECONDS + 30, receive_buffer=4096) as wire:
            wire.send(request("GET", "/events"))
            started = time.monotonic()
            wait_for(lambda: b"client gone" in log.read_bytes(), "the stream ended",
                     WRITE_STALL_SECONDS + 30)  # fmt: skip
            assert time.monotonic() - started >= WRITE_STALL_SECONDS - 1
            assert wire.closed_by_server()  # what it had not taken is dropped
        with Wire(port) as other:  # the server serves on
            other.send(request("GET", "/events"))
            assert other.begun(b"data: ").status == 200
    finally:
        server.kill()
        server.wait()


def port_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True
