"""HTTP/1.1 framing as the gateway and a runtime serve it to real sockets: pipelined requests,
chunked bodies (with trailers), ``Expect: 100-continue``, large and many headers, keep-alive and
HTTP/1.0. What a faster path must keep; the limits are listed in docs/runtime.md."""

from __future__ import annotations

import pytest

from modelplane.connections import HEAD_LIMIT_BYTES
from tests.dataplane.conftest import INFER, IRIS_ROW, OTHER_ROW, Served
from tests.dataplane.wire import Response, Wire, chunked, request


def label(response: Response) -> int:
    assert response.status == 200, response.body
    outputs = {o["name"]: o for o in response.json()["outputs"]}
    return int(outputs["label"]["data"][0])


def test_pipelined_requests_are_answered_in_order_each_whole(served: Served) -> None:
    with Wire(served.port) as wire:
        wire.send(
            request("POST", INFER, IRIS_ROW, served.json_headers())
            + request("GET", "/v2/health/ready", headers=served.auth)
            + request("POST", INFER, OTHER_ROW, served.json_headers())
            + request("GET", "/v2/models/iris", headers=served.auth)
            + request("POST", INFER, IRIS_ROW, served.json_headers())
        )
        first, ready, other, metadata, last = wire.responses(5)
        assert [label(first), label(other), label(last)] == [0, 2, 0]
        assert ready.status == 200
        assert ready.json() == {"ready": True}
        assert metadata.json()["name"] == "iris"


@pytest.mark.parametrize("sizes", [[1, 7, 13], [3] * 30, [len(IRIS_ROW) - 1]])
def test_a_chunked_infer_body_in_odd_sizes_is_read_whole(served: Served, sizes: list[int]) -> None:
    framing = ("Transfer-Encoding", "chunked")
    with Wire(served.port) as wire:
        wire.send(request("POST", INFER, headers=served.json_headers(framing)))
        wire.send(chunked(IRIS_ROW, sizes))
        assert label(wire.response()) == 0
        wire.send(request("POST", INFER, OTHER_ROW, served.json_headers()))  # framing kept
        assert label(wire.response()) == 2


def test_a_chunked_body_with_trailers_is_served_and_the_connection_kept(served: Served) -> None:
    headers = served.json_headers(("Transfer-Encoding", "chunked"), ("Trailer", "X-Checksum"))
    with Wire(served.port) as wire:
        body = chunked(OTHER_ROW, [10, 20], trailers=[("X-Checksum", "sha256:abc")])
        wire.send(request("POST", INFER, headers=headers) + body)
        assert label(wire.response()) == 2
        wire.send(request("GET", "/v2/health/live", headers=served.auth))
        assert wire.response().status == 200


def test_expect_continue_is_answered_100_then_the_response(served: Served) -> None:
    headers = served.json_headers(("Expect", "100-continue"))
    with Wire(served.port) as wire:
        wire.send(request("POST", INFER, IRIS_ROW, headers)[: -len(IRIS_ROW)])  # the head alone
        assert wire.interim_or_final().status == 100
        wire.send(IRIS_ROW)
        assert label(wire.response()) == 0
        wire.send(request("GET", "/v2/health/live"))  # still open for the next request
        assert wire.response().status == 200


def refused_before_the_body(served: Served) -> list[tuple[list[tuple[str, str]], int]]:
    too_large = ("Content-Length", str(64 * 1024 * 1024 + 1))  # both servers' default limit
    cases = [(served.json_headers(too_large), 413)]
    if served.auth:  # the gateway, with --auth: no credential
        cases.append(([("Content-Type", "application/json"), ("Content-Length", "84")], 401))
    return cases


def test_a_request_refused_before_its_body_gets_its_status_without_sending_it(
    served: Served,
) -> None:
    for headers, status in refused_before_the_body(served):
        with Wire(served.port) as wire:
            wire.send(request("POST", INFER, headers=[*headers, ("Expect", "100-continue")]))
            refused = wire.interim_or_final()
            assert refused.status == status, refused.body
            assert wire.interim == []  # never asked for the body
            # The body will not come, so the connection cannot frame another request.
            assert refused.headers["connection"] == "close"
            assert wire.closed_by_server()


def test_a_refusal_mid_body_keeps_the_connection_framed(served: Served) -> None:
    """Without ``Expect``, a client sends its body anyway: the server reads it past the refusal
    (no credential at the gateway, a model a runtime does not serve) and the next request on
    the connection is served."""
    path, status = (INFER, 401) if served.auth else ("/v2/models/nowhere/infer", 404)
    with Wire(served.port) as wire:
        wire.send(request("POST", path, IRIS_ROW, [("Content-Type", "application/json")]))
        assert wire.response().status == status
        wire.send(request("POST", INFER, IRIS_ROW, served.json_headers()))
        assert label(wire.response()) == 0


HUNDRED_SMALL = [(f"X-Small-{i}", "v" * 40) for i in range(100)]
ONE_8K = [("X-Large", "v" * 8192)]
HUNDRED_8K = [(f"X-Large-{i}", "v" * 8192) for i in range(100)]  # 800 KiB


@pytest.mark.parametrize("headers", [HUNDRED_SMALL, ONE_8K, [*ONE_8K, *HUNDRED_SMALL]])
def test_large_and_many_headers_within_the_limit_are_served(
    served: Served, headers: list[tuple[str, str]]
) -> None:
    with Wire(served.port) as wire:
        wire.send(request("POST", INFER, IRIS_ROW, [*served.json_headers(), *headers]))
        assert label(wire.response()) == 0


def test_a_head_over_the_limit_is_refused_431_and_others_are_served(served: Served) -> None:
    with Wire(served.port) as other:
        other.send(request("GET", "/v2/health/ready", headers=served.auth))
        assert other.response().status == 200
        for headers in (HUNDRED_8K, [("X-Huge", "v" * (HEAD_LIMIT_BYTES + 1))]):
            with Wire(served.port) as wire:
                wire.send(request("GET", "/v2/health/ready", headers=[*served.auth, *headers]))
                refused = wire.response()
                assert refused.status == 431
                assert f"exceeds {HEAD_LIMIT_BYTES} bytes" in refused.json()["error"]
                assert wire.closed_by_server()
        other.send(request("POST", INFER, IRIS_ROW, served.json_headers()))  # kept, served
        assert label(other.response()) == 0


def test_an_idle_connection_is_closed_after_the_keep_alive_timeout(served: Served) -> None:
    with Wire(served.port) as idle, Wire(served.port) as kept:
        kept.send(request("GET", "/v2/health/live"))
        assert kept.response().status == 200
        kept.send(request("GET", "/v2/health/live"))  # reused at once
        assert kept.response().status == 200
        assert kept.closed_by_server()  # then idle: closed within the read bound
        assert idle.closed_by_server()  # never sent a request


def test_connection_close_closes_after_the_answer(served: Served) -> None:
    with Wire(served.port) as wire:
        close = ("Connection", "close")
        wire.send(request("POST", INFER, IRIS_ROW, served.json_headers(close)))
        answer = wire.response()
        assert label(answer) == 0
        assert answer.headers["connection"] == "close"
        assert wire.closed_by_server()


@pytest.mark.parametrize("keep_alive", [False, True])
def test_http_1_0_is_served_one_request_a_connection(served: Served, keep_alive: bool) -> None:
    asked = [("Connection", "keep-alive")] if keep_alive else []
    with Wire(served.port) as wire:
        wire.send(request("POST", INFER, OTHER_ROW, served.json_headers(*asked), version="1.0"))
        answer = wire.response()
        assert label(answer) == 2
        assert answer.headers["connection"] == "close"
        assert wire.closed_by_server()
