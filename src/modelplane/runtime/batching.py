"""Adaptive batching: concurrent requests to one model merge into one model call.

One worker task owns the model. It takes whatever requests are queued, up to ``max_batch_size``
rows, and waits up to ``max_delay`` for more only while other requests are still arriving (being
read or decoded); at concurrency 1 nothing waits. While the model runs on its thread the event
loop keeps accepting, so the next batch grows with the load. A failed merged call is retried one
request at a time, so one poisonous request fails alone.

A lone request to a model whose calls take less than ``INLINE_BELOW`` seconds of CPU (a running
average) runs on the event loop itself: for a sub-millisecond model the hop to the model thread
and back costs more than the call. Batches and slower models go to the model thread, so the loop
keeps accepting (and the next batch keeps growing) while they compute.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field

import numpy as np

from modelplane.errors import ModelplaneError, PredictError
from modelplane.runtime.types import Array, rows

INLINE_BELOW = 0.0005
_SMOOTHING = 0.2

PredictFn = Callable[[dict[str, Array]], dict[str, Array]]
Observer = Callable[[float], None]


@dataclass
class BatchObservers:
    """Where the batcher reports what it did; no-ops unless the composition root wires metrics."""

    queue_seconds: Observer = lambda _: None
    inference_seconds: Observer = lambda _: None
    batch_size: Observer = lambda _: None


@dataclass
class BatchTiming:
    """When a request waited and ran (``time.time_ns()``), for its trace; filled only when
    the caller asks, so an untraced request costs no clock reads."""

    queued_ns: int = 0
    started_ns: int = 0
    finished_ns: int = 0
    batch_size: int = 0


@dataclass(eq=False)
class _Pending:
    inputs: dict[str, Array]
    rows: int
    key: tuple[tuple[str, str, tuple[int, ...]], ...]
    future: asyncio.Future[dict[str, Array]]
    enqueued: float
    timing: BatchTiming | None = None


@dataclass
class Batcher:
    predict: PredictFn
    executor: Executor
    max_batch_size: int = 1
    max_delay: float = 0.0
    arriving: Callable[[], int] = lambda: 0
    observers: BatchObservers = field(default_factory=BatchObservers)
    batchable: bool = True

    def __post_init__(self) -> None:
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._held: _Pending | None = None
        self._worker: asyncio.Task[None] | None = None
        self._typical_call = INLINE_BELOW  # seconds; the first call measures on the thread

    def start(self) -> None:
        self._worker = asyncio.get_running_loop().create_task(self._run(), name="batcher")

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None

    async def submit(
        self, inputs: dict[str, Array], timing: BatchTiming | None = None
    ) -> dict[str, Array]:
        loop = asyncio.get_running_loop()
        key = tuple(sorted((n, a.dtype.str, a.shape[1:]) for n, a in inputs.items()))
        count = max((rows(a) for a in inputs.values()), default=1)
        if timing is not None:
            timing.queued_ns = time.time_ns()
        pending = _Pending(inputs, count, key, loop.create_future(), time.perf_counter(), timing)
        self._queue.put_nowait(pending)
        return await pending.future

    async def _run(self) -> None:
        while True:
            batch = await self._collect()
            await self._execute(batch)

    async def _collect(self) -> list[_Pending]:
        first = self._held or await self._queue.get()
        self._held = None
        batch, total = [first], first.rows
        limit = self.max_batch_size if self.batchable and first.key else 1
        deadline = time.perf_counter() + self.max_delay
        while total < limit:
            item = await self._next(deadline)
            if item is None:
                break
            if item.key != first.key or total + item.rows > limit:
                self._held = item
                break
            batch.append(item)
            total += item.rows
        return batch

    async def _next(self, deadline: float) -> _Pending | None:
        with contextlib.suppress(asyncio.QueueEmpty):
            return self._queue.get_nowait()
        remaining = deadline - time.perf_counter()
        if remaining <= 0 or self.arriving() <= 0:
            return None
        try:
            return await asyncio.wait_for(self._queue.get(), remaining)
        except TimeoutError:
            return None

    async def _execute(self, batch: list[_Pending]) -> None:
        started = time.perf_counter()
        for item in batch:
            self.observers.queue_seconds(started - item.enqueued)
        self.observers.batch_size(len(batch))
        live = [item for item in batch if not item.future.done()]  # skip cancelled clients
        if not live:
            return
        timed = [item.timing for item in live if item.timing is not None]
        if timed:
            now = time.time_ns()
            for timing in timed:
                timing.started_ns, timing.batch_size = now, len(live)
        try:
            merged = await self._run_model(live)
        except Exception as exc:
            if len(live) == 1:
                _settle(live[0], exc)
                return
            for item in live:  # isolate the request that broke the batch
                try:
                    _settle(item, await self._run_model([item]))
                except Exception as single_exc:
                    _settle(item, single_exc)
            return
        finally:
            self.observers.inference_seconds(time.perf_counter() - started)
            if timed:
                now = time.time_ns()
                for timing in timed:
                    timing.finished_ns = now
        if len(live) == 1:
            _settle(live[0], merged)
            return
        offsets = np.cumsum([item.rows for item in live])[:-1]
        parts = {name: np.split(array, offsets) for name, array in merged.items()}
        for index, item in enumerate(live):
            _settle(item, {name: chunks[index] for name, chunks in parts.items()})

    async def _run_model(self, batch: list[_Pending]) -> dict[str, Array]:
        if len(batch) == 1 and self._typical_call < INLINE_BELOW:
            return self._call(batch)
        return await asyncio.get_running_loop().run_in_executor(self.executor, self._call, batch)

    def _call(self, batch: list[_Pending]) -> dict[str, Array]:
        # CPU time of the calling thread: unlike wall time it excludes waiting for the GIL,
        # which under load would keep a fast model off the event loop for good.
        started = time.thread_time()
        try:
            return self._compute(batch)
        finally:
            took = time.thread_time() - started
            self._typical_call += _SMOOTHING * (took - self._typical_call)

    def _compute(self, batch: list[_Pending]) -> dict[str, Array]:
        if len(batch) == 1:
            return self.predict(batch[0].inputs)
        names = batch[0].inputs.keys()
        merged_inputs = {n: np.concatenate([item.inputs[n] for item in batch]) for n in names}
        outputs = self.predict(merged_inputs)
        total = sum(item.rows for item in batch)
        for name, array in outputs.items():
            if rows(array) != total:
                raise PredictError(
                    f"output {name!r} has {rows(array)} rows for a batch of {total}; "
                    f"the model does not batch along the first dimension"
                )
        return outputs


def _settle(item: _Pending, outcome: dict[str, Array] | BaseException) -> None:
    if item.future.done():
        return
    if isinstance(outcome, BaseException):
        if not isinstance(outcome, ModelplaneError):
            outcome = PredictError(f"model call failed: {outcome!r}")
        item.future.set_exception(outcome)
    else:
        item.future.set_result(outcome)
