"""Text generation, engine-neutral: what a request asks (sampling, limits, stop sequences), what
it gets back, the seams an engine implements, and :class:`Generation`, the data plane's door to
the model.

An engine (llama.cpp, transformers) tokenizes, renders chat messages with the model's own template
and makes tokens: several sequences a step (:class:`BatchGenerator`, llama.cpp's slots) or one
sequence at a time (:class:`TextGenerator`, run as a batch of one by :class:`OneAtATime`).
Everything a client sees of generation beyond that (``max_tokens``, ``stop``, ``finish_reason``,
usage, the deadline, the waiting list, what happens when the client leaves) is decided by the
scheduler (``scheduling.py``) and here, the same for every engine.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncGenerator, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from modelplane.api.engine_load import EngineLoad
from modelplane.errors import InvalidRequestError, PredictError

if TYPE_CHECKING:
    from modelplane.runtime.scheduling import Scheduler

CHARS_PER_TOKEN = 4.0  # English text on common tokenizers, until prompts tell otherwise


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
    adapter: str = ""  # the engine's key of the LoRA adapter to apply; "": the base model


class TextGenerator(Protocol):
    """A loaded language model that makes one sequence at a time. Every method is called from the
    model thread, never concurrently."""

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


class BatchGenerator(Protocol):
    """A loaded language model that advances several sequences together, one per slot. Every
    method is called from the model thread, never concurrently."""

    @property
    def slots(self) -> int:
        """How many sequences it runs at once."""
        ...

    @property
    def context_length(self) -> int:
        """Tokens of context of each sequence."""
        ...

    @property
    def kv_cache_usage(self) -> float:
        """Share of the KV cache the running sequences hold (0 to 1)."""
        ...

    @property
    def cache_tokens(self) -> int:
        """Prompt tokens the engine keeps for later prompts that start alike (its slots' cache
        and any saved states); 0 for an engine that keeps none."""
        ...

    def tokenize(self, text: str) -> list[int]: ...

    def chat_prompt(self, messages: list[ChatMessage]) -> str: ...

    def start(self, prompt: list[int], sampling: Sampling) -> int:
        """Take a free slot for a new sequence (there is one) and return it; the sequence reads
        ``prompt`` in the coming steps."""
        ...

    def step(self) -> dict[int, str | None]:
        """Advance every started sequence: for each slot that made a token, its text ("" while
        a character is incomplete), or None where the model ended the sequence. Slots still
        reading their prompt are absent."""
        ...

    def finish(self, slot: int) -> None:
        """Free ``slot``: its sequence made its last token, or its client left."""
        ...


class OneAtATime:
    """A :class:`TextGenerator` as a batch of one: the scheduler drives it token by token, with
    the same waiting list, limits and cancellation as a batching engine."""

    slots = 1
    kv_cache_usage = 0.0  # an engine of one sequence does not tell
    cache_tokens = 0  # nor keeps a prompt's cache for the next request

    def __init__(self, generator: TextGenerator) -> None:
        self.generator = generator
        self._tokens: Iterator[str] | None = None

    @property
    def context_length(self) -> int:
        return self.generator.context_length

    def tokenize(self, text: str) -> list[int]:
        return self.generator.tokenize(text)

    def chat_prompt(self, messages: list[ChatMessage]) -> str:
        return self.generator.chat_prompt(messages)

    def start(self, prompt: list[int], sampling: Sampling) -> int:
        self._tokens = self.generator.generate(prompt, sampling)
        return 0

    def step(self) -> dict[int, str | None]:
        if self._tokens is None:
            return {}
        return {0: next(self._tokens, None)}

    def finish(self, slot: int) -> None:
        close = getattr(self._tokens, "close", None)
        if close is not None:
            close()  # a generator's own clean-up (an engine's cache) runs now
        self._tokens = None


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


class Generation:
    """The data plane's door to one language model: prompts tokenized on the model thread,
    requests checked against the model's limits, then run by the scheduler, their tokens streamed
    back as they come."""

    def __init__(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler
        self.engine = scheduler.engine
        self.limits = scheduler.limits
        self.chars_per_token = CHARS_PER_TOKEN  # of the prompts read lately, smoothed

    def load(self) -> EngineLoad:
        return self.scheduler.load(self.chars_per_token)

    async def prompt(self, text: str) -> Prompt:
        return self._measured(text, await self.scheduler.call(lambda: self.engine.tokenize(text)))

    async def chat_prompt(self, messages: list[ChatMessage]) -> Prompt:
        def render() -> tuple[str, list[int]]:
            try:
                text = self.engine.chat_prompt(messages)
            except Exception as exc:  # a template that rejects the conversation
                raise InvalidRequestError(f"messages: {exc}") from exc
            return text, self.engine.tokenize(text)

        text, tokens = await self.scheduler.call(render)
        return self._measured(text, tokens)

    def _measured(self, text: str, tokens: list[int]) -> Prompt:
        """``tokens`` as a prompt, their characters per token counted into the smoothed ratio
        the gateway reads (it sizes prompts in characters)."""
        if tokens and text:
            self.chars_per_token += (len(text) / len(tokens) - self.chars_per_token) / 16
        return Prompt(tokens)

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

        Raises :class:`EngineBusyError` at once when the waiting list is full. Leaving the
        iteration early (the client went away) cancels the generation: a request still waiting
        never starts, a running one frees its slot at the next step.
        """
        ticket = self.scheduler.submit(prompt, sampling, asyncio.get_running_loop())
        try:
            while True:
                item = await ticket.queue.get()
                if isinstance(item, BaseException):
                    raise item
                yield item
                if isinstance(item, Completion):
                    return
        finally:
            self.scheduler.cancel(ticket)

    async def complete(self, prompt: Prompt, sampling: Sampling) -> Completion:
        pieces: list[str] = []
        async for item in self.stream(prompt, sampling):
            if isinstance(item, Completion):
                item.text = "".join(pieces)
                return item
            pieces.append(item)
        raise PredictError("generation ended without a result")  # pragma: no cover
