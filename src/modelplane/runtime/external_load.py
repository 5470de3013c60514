"""The load of an engine the runtime fronts (``external.py``), in the terms the in-process
engines report it (``api/engine_load.py``), so that engine-aware balancing scores both alike.

An engine whose Prometheus metrics say how many requests it runs and queues and how full its KV
cache is (vLLM: ``vllm:num_requests_running``, ``vllm:num_requests_waiting``,
``vllm:kv_cache_usage_perc``, and ``vllm:cache_config_info``'s blocks for the capacity) is read
every ``POLL_SECONDS``. For one that serves no metrics (llama.cpp's server), or whose last read
is stale, the runtime counts the requests it has open at the engine: the first ``slots`` of them
running, the rest waiting, and the KV cache as full as the share of slots taken.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

from modelplane.api.engine_load import EngineLoad

POLL_SECONDS = 0.5
STALE_SECONDS = 2.0  # as the gateway: an older read is no longer the engine's state
CHARS_PER_TOKEN = 4.0  # no engine says what its prompts average; English text's usual figure
RUNNING, WAITING = "vllm:num_requests_running", "vllm:num_requests_waiting"
KV_USAGE = ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc")  # newer name first
CACHE_CONFIG = "vllm:cache_config_info"


@dataclass(frozen=True, slots=True)
class _Read:
    running: int
    waiting: int
    kv_usage: float
    capacity: int | None  # prompt tokens its cache holds, when it says
    at: float


class ExternalLoad:
    """What an external engine is doing now: its metrics' last read, else the runtime's count."""

    def __init__(self, slots: int, capacity: int) -> None:
        self.slots, self.capacity = slots, capacity
        self.open = 0  # requests sent to the engine and not yet closed
        self._read: _Read | None = None

    def note(self, exposition: str, now: float) -> None:
        """Take the engine's state from its Prometheus ``exposition``; one that lacks the
        counts (another engine's, or one not started) leaves the runtime's count in use."""
        values: dict[str, float] = {}
        capacity = None
        for family in text_string_to_metric_families(exposition):
            for sample in family.samples:
                if sample.name == CACHE_CONFIG:
                    blocks, size = (
                        sample.labels.get("num_gpu_blocks"),
                        sample.labels.get("block_size"),
                    )
                    if blocks and size and blocks.isdigit() and size.isdigit():
                        capacity = int(blocks) * int(size)
                elif sample.name in (RUNNING, WAITING, *KV_USAGE):
                    values[sample.name] = values.get(sample.name, 0.0) + sample.value
        if RUNNING not in values or WAITING not in values:
            return
        kv = next((values[name] for name in KV_USAGE if name in values), 0.0)
        running, waiting = int(values[RUNNING]), int(values[WAITING])
        self._read = _Read(running, waiting, min(1.0, max(0.0, kv)), capacity, now)

    def load(self, now: float) -> EngineLoad:
        read = self._read
        if read is not None and now - read.at <= STALE_SECONDS:
            return EngineLoad(
                running=read.running,
                waiting=read.waiting,
                slots=max(self.slots, read.running),
                kv_usage=read.kv_usage,
                capacity=read.capacity if read.capacity is not None else self.capacity,
                chars_per_token=CHARS_PER_TOKEN,
            )
        running = min(self.open, self.slots)
        return EngineLoad(
            running=running,
            waiting=self.open - running,
            slots=self.slots,
            kv_usage=running / self.slots,
            capacity=self.capacity,
            chars_per_token=CHARS_PER_TOKEN,
        )
