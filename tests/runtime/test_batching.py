"""Adaptive batching, in-process with a real batcher and model thread, and through a real server."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest

from modelplane.errors import PredictError
from modelplane.runtime.batching import Batcher
from modelplane.runtime.types import Array
from tests.conftest import MODELS, StartRuntime, write_manifest


class Recorder:
    """A model that doubles its input, records each call's rows, and can be held mid-call."""

    def __init__(self) -> None:
        self.calls: list[int] = []
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self, inputs: dict[str, Array]) -> dict[str, Array]:
        self.gate.wait(5)
        x = inputs["x"]
        if (x < 0).any():
            raise ValueError("negative input")
        self.calls.append(len(x))
        return {"y": x * 2}


@pytest.fixture
def executor() -> Iterator[ThreadPoolExecutor]:
    pool = ThreadPoolExecutor(max_workers=1)
    yield pool
    pool.shutdown(wait=True)


async def run_batch(
    batcher: Batcher, values: list[float]
) -> list[dict[str, Array] | BaseException]:
    batcher.start()
    try:
        jobs = [batcher.submit({"x": np.array([[v]])}) for v in values]
        return await asyncio.gather(*jobs, return_exceptions=True)
    finally:
        await batcher.close()


def test_concurrent_requests_merge_and_split_back(executor: ThreadPoolExecutor) -> None:
    model = Recorder()
    model.gate.clear()  # the first call blocks, so the rest queue up behind it
    batcher = Batcher(model, executor, max_batch_size=8)

    async def scenario() -> list[dict[str, Array] | BaseException]:
        asyncio.get_running_loop().call_later(0.05, model.gate.set)
        return await run_batch(batcher, [float(i) for i in range(9)])

    results = asyncio.run(scenario())
    assert [r["y"].tolist() for r in results] == [[[2.0 * i]] for i in range(9)]  # type: ignore[index]
    assert sorted(model.calls) == [1, 8]


def test_batch_never_exceeds_max_batch_size(executor: ThreadPoolExecutor) -> None:
    model = Recorder()
    model.gate.clear()
    batcher = Batcher(model, executor, max_batch_size=3)

    async def scenario() -> None:
        asyncio.get_running_loop().call_later(0.05, model.gate.set)
        await run_batch(batcher, [1.0] * 10)

    asyncio.run(scenario())
    assert max(model.calls) <= 3
    assert sum(model.calls) == 10


def test_a_failing_request_fails_alone(executor: ThreadPoolExecutor) -> None:
    model = Recorder()
    model.gate.clear()
    batcher = Batcher(model, executor, max_batch_size=8)

    async def scenario() -> list[dict[str, Array] | BaseException]:
        asyncio.get_running_loop().call_later(0.05, model.gate.set)
        return await run_batch(batcher, [1.0, 2.0, -1.0, 3.0])

    results = asyncio.run(scenario())
    assert isinstance(results[2], PredictError)
    assert "negative input" in str(results[2])
    assert [r["y"].item() for i, r in enumerate(results) if i != 2] == [2.0, 4.0, 6.0]  # type: ignore[index]


def test_unbatchable_model_is_called_per_request(executor: ThreadPoolExecutor) -> None:
    model = Recorder()
    batcher = Batcher(model, executor, max_batch_size=8, batchable=False)
    asyncio.run(run_batch(batcher, [1.0, 2.0, 3.0]))
    assert model.calls == [1, 1, 1]


def test_no_wait_at_concurrency_one(executor: ThreadPoolExecutor) -> None:
    """With nothing else arriving, a lone request never waits for max_delay."""
    model = Recorder()
    batcher = Batcher(model, executor, max_batch_size=8, max_delay=30.0)

    async def scenario() -> None:
        await asyncio.wait_for(run_batch(batcher, [1.0]), timeout=5)

    asyncio.run(scenario())
    assert model.calls == [1]


def test_server_batches_concurrent_clients(start_runtime: StartRuntime, tmp_path) -> None:  # type: ignore[no-untyped-def]
    manifest = write_manifest(
        tmp_path / "counting.yaml",
        "counting",
        (MODELS / "counting.py").as_uri(),
        "python",
        extra="  batching: {maxBatchSize: 16, maxDelayMs: 5}\n"
        "  runtime: {parameters: {sleep: '0.05'}}\n",
    )
    runtime = start_runtime("-f", str(manifest))
    runtime.wait_ready()

    async def many() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=runtime.url, timeout=30) as client:
            jobs = [
                client.post(
                    "/v2/models/counting/infer",
                    json={
                        "inputs": [
                            {"name": "x", "datatype": "FP32", "shape": [1, 2], "data": [i, i]}
                        ]
                    },
                )
                for i in range(24)
            ]
            poisoned = client.post(
                "/v2/models/counting/infer",
                json={
                    "inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 2], "data": [-1, 0]}]
                },
            )
            return await asyncio.gather(*jobs, poisoned)

    replies = asyncio.run(many())
    *good, bad = replies
    assert bad.status_code == 500
    assert "poisoned row" in bad.json()["error"]
    batch_sizes = []
    for i, reply in enumerate(good):
        assert reply.status_code == 200, reply.text
        outputs = {o["name"]: o["data"] for o in reply.json()["outputs"]}
        assert outputs["doubled"] == [2.0 * i, 2.0 * i]
        batch_sizes.append(outputs["batch_rows"][0])
    assert max(batch_sizes) > 1, "concurrent requests should have shared model calls"


def test_fast_lone_requests_run_on_the_event_loop_slow_ones_on_the_model_thread(
    executor: ThreadPoolExecutor,
) -> None:
    threads: list[str] = []

    def model(inputs: dict[str, Array]) -> dict[str, Array]:
        threads.append(threading.current_thread().name)
        if inputs["x"].item() > 0:
            deadline = time.thread_time() + 0.01  # burn CPU: a slow model
            while time.thread_time() < deadline:
                pass
        return {"y": inputs["x"]}

    batcher = Batcher(model, executor, max_batch_size=8)

    async def scenario() -> None:
        batcher.start()
        try:
            for value in (0.0, 0.0, 0.0, 1.0, 1.0, 1.0):
                await batcher.submit({"x": np.array([[value]])})
        finally:
            await batcher.close()

    asyncio.run(scenario())
    loop_thread = threading.current_thread().name
    assert threads[1] == loop_thread  # fast: measured, then served inline
    assert threads[-1] != loop_thread  # slow calls moved to the model thread
