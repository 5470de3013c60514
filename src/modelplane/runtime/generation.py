"""Text generation, engine-neutral: limits, stop sequences, one request at a time on the model
thread, tokens handed to the event loop as they come, and cancellation between tokens.

An engine (llama.cpp, transformers) implements :class:`TextGenerator`: it tokenizes, renders chat
messages with the model's own template and yields the text of each new token. Everything a client
sees of generation beyond that (``max_tokens``, ``stop``, ``finish_reason``, usage, the deadline,
what happens when the client leaves) is decided here, the same for every engine.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from collections.abc import AsyncGenerator, Callable, Iterator
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from modelplane.errors import (
    DeadlineExceededError,
    InvalidRequestError,
    PredictError,
)
from modelplane.telemetry.metrics import GenerationMetrics

T = TypeVar("T")


@dataclass(frozen=True)
class ChatMessage:
    role: str
    content: str


@dataclass(frozen=True)
class Sampling:
    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()


class TextGenerator(Protocol):
    """A loaded language model. Every method is called from the model thread, never concurrently."""

    @property
    def context_length(self) -> int: ...

    def tokenize(self, text: str) -> list[int]:
        """Token ids of ``text`` as the model reads a prompt (with its start token, if any)."""
        ...

    def chat_prompt(self, messages: list[ChatMessage]) -> str:
        """The prompt for a conversation, rendered with the model's chat template."""
        ...

    def generate(self, prompt: list[int], sampling: Sampling) -> Iterator[str]:
        """The text of each new token, in order ("" while a character is incomplete), until the
        model ends its sequence. The caller stops iterating (and closes the iterator) at its own
        limits: token counts, stop sequences, deadlines, cancellation."""
        ...


@dataclass(frozen=True)
class GenerationLimits:
    context_length: int
    max_tokens: int  # the most any request may ask for
    timeout: float  # seconds from the start of generation


def check_max_tokens(requested: int | None, cap: int) -> None:
    if requested is not None and requested > cap:
        raise InvalidRequestError(
            f"max_tokens is {requested}; this model generates at most {cap} tokens per request",
            param="max_tokens",
        )


@dataclass(frozen=True)
class Prompt:
    tokens: list[int]

    def __len__(self) -> int:
        return len(self.tokens)


@dataclass
class Completion:
    """What a finished generation produced; ``text`` is set for non-streamed requests."""

    prompt_tokens: int
    completion_tokens: int = 0
    finish_reason: str = "stop"
    text: str = ""


class StopMatcher:
    """Releases text as it is generated, holding back what could still become a stop sequence."""

    def __init__(self, stops: tuple[str, ...]) -> None:
        self.stops = tuple(s for s in stops if s)
        self._pending = ""

    def feed(self, text: str) -> tuple[str, bool]:
        """``(text safe to release, whether a stop sequence was reached)``."""
        self._pending += text
        if not self.stops:
            released, self._pending = self._pending, ""
            return released, False
        hits = [i for i in (self._pending.find(s) for s in self.stops) if i >= 0]
        if hits:
            released, self._pending = self._pending[: min(hits)], ""
            return released, True
        keep = max((_overlap(self._pending, s) for s in self.stops), default=0)
        cut = len(self._pending) - keep
        released, self._pending = self._pending[:cut], self._pending[cut:]
        return released, False

    def flush(self) -> str:
        released, self._pending = self._pending, ""
        return released


def _overlap(text: str, stop: str) -> int:
    """Length of the longest end of ``text`` that begins ``stop``."""
    for size in range(min(len(text), len(stop) - 1), 0, -1):
        if stop.startswith(text[-size:]):
            return size
    return 0


@dataclass
class _Request:
    prompt: Prompt
    sampling: Sampling
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[str | Completion | BaseException]
    cancelled: threading.Event = field(default_factory=threading.Event)
    queued_at: float = field(default_factory=time.perf_counter)


class Generation:
    """Serves one :class:`TextGenerator`: checks requests, runs them one at a time on the model
    thread and streams their tokens back to the event loop."""

    def __init__(
        self,
        generator: TextGenerator,
        executor: Executor,
        limits: GenerationLimits,
        metrics: GenerationMetrics,
    ) -> None:
        self.generator = generator
        self.executor = executor
        self.limits = limits
        self.metrics = metrics

    async def on_model_thread(self, call: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.executor, call)

    async def prompt(self, text: str) -> Prompt:
        return Prompt(await self.on_model_thread(lambda: self.generator.tokenize(text)))

    async def chat_prompt(self, messages: list[ChatMessage]) -> Prompt:
        def render() -> list[int]:
            try:
                text = self.generator.chat_prompt(messages)
            except Exception as exc:  # a template that rejects the conversation
                raise InvalidRequestError(f"messages: {exc}") from exc
            return self.generator.tokenize(text)

        return Prompt(await self.on_model_thread(render))

    def sampling_for(self, prompt: Prompt, requested: int | None, asked: Sampling) -> Sampling:
        """``asked`` with its ``max_tokens`` checked against the model's limits and the prompt;
        ``requested`` None: as many as fit."""
        context, cap = self.limits.context_length, self.limits.max_tokens
        if len(prompt) >= context:
            raise InvalidRequestError(
                f"the prompt is {len(prompt)} tokens; this model's context length is {context} "
                f"tokens, which must also leave room for at least one generated token"
            )
        room = context - len(prompt)
        if requested is not None:
            check_max_tokens(requested, cap)
            if requested > room:
                raise InvalidRequestError(
                    f"the prompt ({len(prompt)} tokens) plus max_tokens ({requested}) exceeds "
                    f"this model's context length of {context} tokens"
                )
        max_tokens = min(requested if requested is not None else cap, room)
        return dataclasses.replace(asked, max_tokens=max_tokens)

    async def stream(
        self, prompt: Prompt, sampling: Sampling
    ) -> AsyncGenerator[str | Completion, None]:
        """Text pieces as they are generated, then the :class:`Completion`.

        Leaving the iteration early (the client went away) cancels the generation: a request
        still waiting never starts, a running one stops before its next token.
        """
        loop = asyncio.get_running_loop()
        request = _Request(prompt, sampling, loop, asyncio.Queue())
        self.metrics.waiting.inc()
        future = loop.run_in_executor(self.executor, self._run, request)
        try:
            while True:
                item = await request.queue.get()
                if isinstance(item, BaseException):
                    raise item
                yield item
                if isinstance(item, Completion):
                    return
        finally:
            request.cancelled.set()
            await asyncio.shield(future)  # the model thread lets go before the next request

    async def complete(self, prompt: Prompt, sampling: Sampling) -> Completion:
        pieces: list[str] = []
        async for item in self.stream(prompt, sampling):
            if isinstance(item, Completion):
                item.text = "".join(pieces)
                return item
            pieces.append(item)
        raise PredictError("generation ended without a result")  # pragma: no cover

    # -- on the model thread -------------------------------------------------------------------

    def _run(self, request: _Request) -> None:
        self.metrics.waiting.dec()
        if request.cancelled.is_set():
            return  # the client left while it waited
        self.metrics.running.inc()
        try:
            result: Completion | BaseException = self._generate(request)
        except Exception as exc:
            result = PredictError(f"generation failed: {exc}")
        finally:
            self.metrics.running.dec()
            usage = getattr(self.generator, "kv_cache_usage", None)  # engines that can tell
            if usage is not None:
                self.metrics.kv_cache_usage.set(usage)
        request.loop.call_soon_threadsafe(request.queue.put_nowait, result)

    def _generate(self, request: _Request) -> Completion | BaseException:
        sampling, emit = request.sampling, request.queue.put_nowait
        started = time.perf_counter()
        self.metrics.queue_seconds.observe(started - request.queued_at)
        deadline = started + self.limits.timeout
        result = Completion(prompt_tokens=len(request.prompt), finish_reason="length")
        matcher = StopMatcher(sampling.stop)
        first_at = last_at = 0.0
        tokens = self.generator.generate(request.prompt.tokens, sampling)
        try:
            for piece in tokens:
                last_at = time.perf_counter()
                if result.completion_tokens == 0:
                    first_at = last_at
                    self.metrics.time_to_first_token.observe(first_at - request.queued_at)
                result.completion_tokens += 1
                released, stopped = matcher.feed(piece)
                if released:
                    request.loop.call_soon_threadsafe(emit, released)
                if stopped:
                    result.finish_reason = "stop"
                    break
                if result.completion_tokens >= sampling.max_tokens:
                    break
                if request.cancelled.is_set():
                    result.finish_reason = "cancelled"
                    break
                if last_at > deadline:
                    return DeadlineExceededError(
                        f"generation ran past its timeout of {self.limits.timeout:g}s after "
                        f"{result.completion_tokens} tokens"
                    )
            else:
                result.finish_reason = "stop"  # the model ended its sequence
        finally:
            close = getattr(tokens, "close", None)
            if close is not None:
                close()  # a generator's own clean-up (an engine's lock, its cache) runs now
            self.metrics.prompt_tokens.inc(result.prompt_tokens)
            self.metrics.generation_tokens.inc(result.completion_tokens)
            if result.completion_tokens > 1:
                per_token = (last_at - first_at) / (result.completion_tokens - 1)
                self.metrics.time_per_output_token.observe(per_token)
            self.metrics.duration.observe(time.perf_counter() - request.queued_at)
        rest = matcher.flush()  # empty after a stop sequence: what followed it is not sent
        if rest:
            request.loop.call_soon_threadsafe(emit, rest)
        return result
