"""Continuous batching on the model thread: a bounded waiting list, the engine's slots, and the
step loop that runs every admitted request together.

:class:`~modelplane.runtime.generation.Generation` submits each request here. A request waits until
one of the engine's slots is free (or is refused with :class:`EngineBusyError` when the waiting
list is full), then joins the running batch between two steps. Each step advances every running
sequence by one token, reads a piece of the prompts still being read, and hands each new token to
its request's queue on the event loop. A request whose client left frees its slot at the next
step; one that reaches a stop sequence, ``max_tokens`` or its deadline ends there. Calls that must
run on the model thread (tokenizing) run between steps, so they wait for one step at most.

The gauges say what the batch is doing: running requests (slots busy), waiting requests, and the
share of the KV cache the running sequences hold; :meth:`Scheduler.load` says the same to the
gateway (``api/engine_load.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from typing import TypeVar

from modelplane.api.engine_load import EngineLoad
from modelplane.errors import (
    DeadlineExceededError,
    EngineBusyError,
    ModelNotReadyError,
    PredictError,
)
from modelplane.runtime.generation import (
    BatchGenerator,
    Completion,
    GenerationLimits,
    Prompt,
    Sampling,
    StopMatcher,
)
from modelplane.telemetry.metrics import GenerationMetrics

T = TypeVar("T")

DEFAULT_MAX_WAITING = 64
RETRY_AFTER_BOUNDS = (1.0, 60.0)  # seconds a refused client is told to wait


@dataclass(eq=False)
class Ticket:
    """A submitted request, as the event loop holds it: its answer arrives on ``queue``."""

    prompt: Prompt
    sampling: Sampling
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[str | Completion | BaseException] = field(default_factory=asyncio.Queue)
    queued_at: float = field(default_factory=time.perf_counter)
    cancelled: bool = False  # under the scheduler's lock

    def send(self, item: str | Completion | BaseException) -> None:
        """Hand ``item`` to the event loop (from the model thread)."""
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody is left to read it
            self.loop.call_soon_threadsafe(self.queue.put_nowait, item)


class _Running:
    """An admitted request on the model thread: its slot, its text so far and its timings."""

    def __init__(self, ticket: Ticket, slot: int, started: float, timeout: float) -> None:
        self.ticket, self.slot = ticket, slot
        self.started, self.deadline = started, started + timeout
        self.matcher = StopMatcher(ticket.sampling.stop)
        self.result = Completion(prompt_tokens=len(ticket.prompt), finish_reason="length")
        self.first_at = self.last_at = 0.0

    def accept(self, piece: str | None, now: float, metrics: GenerationMetrics) -> bool:
        """Take the sequence's new token (None: the model ended it); True when it is done."""
        result = self.result
        if piece is None:
            result.finish_reason = "stop"
            return True
        self.last_at = now
        if result.completion_tokens == 0:
            self.first_at = now
            metrics.time_to_first_token.observe(now - self.ticket.queued_at)
        result.completion_tokens += 1
        released, stopped = self.matcher.feed(piece)
        if released:
            self.ticket.send(released)
        if stopped:
            result.finish_reason = "stop"
            return True
        return result.completion_tokens >= self.ticket.sampling.max_tokens

    def account(self, metrics: GenerationMetrics, now: float) -> None:
        result = self.result
        metrics.prompt_tokens.inc(result.prompt_tokens)
        metrics.generation_tokens.inc(result.completion_tokens)
        if result.completion_tokens > 1:
            per_token = (self.last_at - self.first_at) / (result.completion_tokens - 1)
            metrics.time_per_output_token.observe(per_token)
        metrics.duration.observe(now - self.ticket.queued_at)


class Scheduler:
    """Runs a :class:`BatchGenerator`'s slots on the model thread, from :meth:`start` until
    :meth:`close`."""

    def __init__(
        self,
        engine: BatchGenerator,
        limits: GenerationLimits,
        metrics: GenerationMetrics,
        max_waiting: int = DEFAULT_MAX_WAITING,
    ) -> None:
        self.engine, self.limits, self.metrics = engine, limits, metrics
        self.max_waiting = max_waiting
        self._lock = threading.Condition()
        self._waiting: deque[Ticket] = deque()
        self._calls: deque[Callable[[], None]] = deque()
        self._busy = 0  # slots taken, under the lock
        self._closed = False
        self._running: dict[int, _Running] = {}  # by slot; the model thread's own
        self._holding = 1.0  # seconds a request holds its slot, smoothed: for Retry-After
        self._kv_usage = 0.0  # as the model thread last measured it
        self._served: Future[None] | None = None

    def start(self, executor: Executor) -> None:
        """Serve on ``executor``'s thread, the model's, until closed."""
        self._served = executor.submit(self._serve)

    async def close(self) -> None:
        with self._lock:
            self._closed = True
            self._lock.notify()
        if self._served is not None:
            await asyncio.wrap_future(self._served)

    # -- from the event loop --------------------------------------------------------------------

    def submit(self, prompt: Prompt, sampling: Sampling, loop: asyncio.AbstractEventLoop) -> Ticket:
        """Queue a request, or refuse it when every slot is busy and the waiting list is full."""
        ticket = Ticket(prompt, sampling, loop)
        with self._lock:
            self._check_open()
            free = self.engine.slots - self._busy
            if len(self._waiting) >= self.max_waiting + free:
                raise EngineBusyError(
                    f"the model is busy: every slot ({self.engine.slots}) is generating and "
                    f"{len(self._waiting)} requests wait (runtime.parameters.maxWaiting is "
                    f"{self.max_waiting}); retry later, or add replicas",
                    self._retry_after(),
                )
            self._waiting.append(ticket)
            self.metrics.waiting.set(len(self._waiting))
            self._lock.notify()
        return ticket

    def cancel(self, ticket: Ticket) -> None:
        """The client left (or its answer ended): a waiting request leaves the list, a running one
        frees its slot at the next step."""
        with self._lock:
            ticket.cancelled = True
            if ticket in self._waiting:
                self._waiting.remove(ticket)
                self.metrics.waiting.set(len(self._waiting))
            self._lock.notify()

    async def call(self, work: Callable[[], T]) -> T:
        """``work``'s result, computed on the model thread between two steps."""
        future: Future[T] = Future()

        def run() -> None:
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(work())
                except BaseException as exc:
                    future.set_exception(exc)

        with self._lock:
            self._check_open()
            self._calls.append(run)
            self._lock.notify()
        return await asyncio.wrap_future(future)

    def load(self, chars_per_token: float) -> EngineLoad:
        """What the engine is doing now, for the gateway's balancing. Plain reads without the
        lock: a count one step old balances as well."""
        return EngineLoad(
            running=self._busy,
            waiting=len(self._waiting),
            slots=self.engine.slots,
            kv_usage=self._kv_usage,
            capacity=self.engine.cache_tokens,
            chars_per_token=chars_per_token,
        )

    def _check_open(self) -> None:
        if self._closed:
            raise ModelNotReadyError("the model is shutting down")

    def _retry_after(self) -> float:
        """When a slot is likely free for one more request: the waiting list's turns, each as
        long as a request has lately held its slot."""
        turns = (len(self._waiting) + 1) / self.engine.slots
        low, high = RETRY_AFTER_BOUNDS
        return float(min(high, max(low, math.ceil(turns * self._holding))))

    # -- on the model thread ---------------------------------------------------------------------

    def _serve(self) -> None:
        while True:
            with self._lock:
                while not (self._closed or self._calls or self._running or self._admissible()):
                    self._lock.wait()
                if self._closed:
                    break
                calls = list(self._calls)
                self._calls.clear()
                admitted = self._take_admitted()
                left = [r for r in self._running.values() if r.ticket.cancelled]
            # Requests whose clients left end first: a call may free what only they held (a
            # LoRA adapter dropped once its last request's lease ended).
            for running in left:
                running.result.finish_reason = "cancelled"
                self._end(running)
            for run in calls:
                run()
            for ticket in admitted:
                self._admit(ticket)
            if self._running:
                self._step()
        self._shut()

    def _admissible(self) -> bool:
        return bool(self._waiting) and self._busy < self.engine.slots

    def _take_admitted(self) -> list[Ticket]:
        """The waiting requests that get a slot now, oldest first (under the lock)."""
        admitted: list[Ticket] = []
        while self._admissible():
            admitted.append(self._waiting.popleft())
            self._busy += 1
        if admitted:
            self.metrics.waiting.set(len(self._waiting))
        return admitted

    def _admit(self, ticket: Ticket) -> None:
        started = time.perf_counter()
        self.metrics.queue_seconds.observe(started - ticket.queued_at)
        try:
            slot = self.engine.start(ticket.prompt.tokens, ticket.sampling)
        except Exception as exc:
            self._release()
            ticket.send(PredictError(f"generation failed: {exc}"))
            return
        self._running[slot] = _Running(ticket, slot, started, self.limits.timeout)
        self.metrics.running.set(len(self._running))

    def _step(self) -> None:
        try:
            made = self.engine.step()
        except Exception as exc:  # the engine failed the whole batch
            for running in list(self._running.values()):
                self._end(running, PredictError(f"generation failed: {exc}"))
            return
        now = time.perf_counter()
        for slot, piece in made.items():
            running = self._running[slot]
            if running.accept(piece, now, self.metrics):
                self._end(running)
        for running in list(self._running.values()):
            if now > running.deadline:
                self._end(running, self._overdue(running))
        self._measure_kv()

    def _measure_kv(self) -> None:
        self._kv_usage = min(1.0, self.engine.kv_cache_usage)
        self.metrics.kv_cache_usage.set(self._kv_usage)

    def _overdue(self, running: _Running) -> DeadlineExceededError:
        return DeadlineExceededError(
            f"generation ran past its timeout of {self.limits.timeout:g}s after "
            f"{running.result.completion_tokens} tokens"
        )

    def _end(self, running: _Running, error: BaseException | None = None) -> None:
        """Free the request's slot and send what it has left: an error, or the rest of its
        text and its :class:`Completion`."""
        self.engine.finish(running.slot)
        del self._running[running.slot]
        self._release()
        now = time.perf_counter()
        running.account(self.metrics, now)
        self._holding += (now - running.started - self._holding) / 8
        self.metrics.running.set(len(self._running))
        self._measure_kv()
        if running.result.finish_reason == "cancelled":
            return  # nobody reads it
        if error is not None:
            running.ticket.send(error)
            return
        rest = running.matcher.flush()  # empty after a stop sequence: what followed is not sent
        if rest:
            running.ticket.send(rest)
        running.ticket.send(running.result)

    def _release(self) -> None:
        with self._lock:
            self._busy -= 1

    def _shut(self) -> None:
        """Closed: whatever still runs or waits is told so."""
        for running in list(self._running.values()):
            self._end(running, ModelNotReadyError("the model is shutting down"))
        with self._lock:
            waiting, self._waiting = list(self._waiting), deque()
            self.metrics.waiting.set(0)
        for ticket in waiting:
            ticket.send(ModelNotReadyError("the model is shutting down"))
