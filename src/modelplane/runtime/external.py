"""An engine's own OpenAI-compatible server as the model of a replica.

The runtime starts the server on a loopback port of its own choosing, waits until it answers, and
from then on fronts it: requests pass through (streams as they come), the replica turns ready only
once the engine is, an engine that dies takes the replica down so that its supervisor (the
embedded platform, or a kubelet) starts a fresh one, and on shutdown the engine is stopped after
the requests in flight finished. What differs between engines is a preset: the command line, the
path that tells it is ready, and whether it serves Prometheus metrics.

llama.cpp's server is what the tests run; vLLM needs a GPU and is not installed by any extra: its
preset expects ``vllm`` on the PATH of the runtime's image.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson

from modelplane.api import ModelFormat, ModelSpec, Task
from modelplane.errors import MissingExtraError, ModelLoadError, ModelNotReadyError, PredictError
from modelplane.processes import die_with_parent, free_port
from modelplane.runtime.external_load import POLL_SECONDS, ExternalLoad

log = logging.getLogger(__name__)

STOP_SECONDS = 10.0
JSON = "application/json"


@dataclass(frozen=True)
class Preset:
    command: Callable[[Path, str, int, ModelSpec], list[str]]
    ready_path: str
    metrics_path: str | None  # Prometheus metrics the runtime passes on at its own /metrics
    # Requests the engine runs at once, and prompt tokens its cache holds, unless it says.
    slots: Callable[[ModelSpec], int]
    capacity: Callable[[ModelSpec], int]


def _llamacpp(model: Path, name: str, port: int, spec: ModelSpec) -> list[str]:
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(model)]
    command += ["--host", "127.0.0.1", "--port", str(port), "--model_alias", name]
    if spec.generation.context_length:
        command += ["--n_ctx", str(spec.generation.context_length)]
    if spec.task is Task.EMBEDDING:
        command += ["--embedding", "true"]
    return command


def _vllm(model: Path, name: str, port: int, spec: ModelSpec) -> list[str]:
    command = ["vllm", "serve", str(model), "--host", "127.0.0.1", "--port", str(port)]
    command += ["--served-model-name", name]
    if spec.generation.context_length:
        command += ["--max-model-len", str(spec.generation.context_length)]
    return command


def _vllm_slots(spec: ModelSpec) -> int:
    args = spec.engine.args
    for at, arg in enumerate(args[:-1]):
        if arg == "--max-num-seqs" and args[at + 1].isdigit():
            return int(args[at + 1])
    return VLLM_MAX_NUM_SEQS


LLAMACPP_CONTEXT = 2048  # llama.cpp's server's n_ctx, unless generation.contextLength says
VLLM_MAX_NUM_SEQS = 256  # vLLM's --max-num-seqs unless its arguments say

PRESETS = {
    # llama.cpp's Python server runs one request at a time in one context.
    ModelFormat.LLAMACPP: Preset(
        _llamacpp, ready_path="/v1/models", metrics_path=None, slots=lambda _: 1,
        capacity=lambda spec: spec.generation.context_length or LLAMACPP_CONTEXT,
    ),
    # vLLM's metrics say its capacity (vllm:cache_config_info): 0 until read.
    ModelFormat.VLLM: Preset(
        _vllm, ready_path="/health", metrics_path="/metrics", slots=_vllm_slots,
        capacity=lambda _: 0,
    ),
}  # fmt: skip


def uses_external_engine(spec: ModelSpec) -> bool:
    return spec.engine.external or spec.format is ModelFormat.VLLM


@dataclass(frozen=True)
class EngineReply:
    """An engine's answer, open until closed: its status and media type at once, its body as it
    comes (``chunks``, as the engine sent them) or whole (``read``)."""

    status: int
    media_type: str
    chunks: AsyncIterator[bytes]
    read: Callable[[], Awaitable[bytes]]
    close: Callable[[], Awaitable[None]]


class ExternalEngine:
    """One engine server process: started, awaited, watched and stopped by the runtime, which
    sends it requests (``send``) once it answers."""

    def __init__(self, spec: ModelSpec, name: str, model: Path) -> None:
        self.spec, self.name, self.model = spec, name, model
        self.preset = PRESETS[spec.format]
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: asyncio.subprocess.Process | None = None
        self._client: httpx.AsyncClient | None = None  # once the engine answers
        self.load = ExternalLoad(self.preset.slots(spec), self.preset.capacity(spec))
        self._polling: asyncio.Task[None] | None = None

    @property
    def command(self) -> list[str]:
        base = self.preset.command(self.model, self.name, self.port, self.spec)
        return [*base, *self.spec.engine.args]

    async def start(self) -> None:
        """Start the server and wait until it answers; a server that exits or never answers
        within the startup timeout is a load failure naming why."""
        command = self.command
        # Looked for, not imported: the server runs in the engine's own process.
        if (
            self.spec.format is ModelFormat.LLAMACPP
            and importlib.util.find_spec("llama_cpp") is None
        ):
            raise MissingExtraError("llama.cpp's server (engine.external)", "llamacpp")
        log.info("starting engine: %s", " ".join(command))
        try:
            self.process = await asyncio.create_subprocess_exec(
                *command, preexec_fn=die_with_parent
            )
        except OSError as exc:
            raise ModelLoadError(f"cannot start the engine ({command[0]}): {exc}") from exc
        deadline = time.monotonic() + self.spec.engine.startup_timeout_seconds
        async with httpx.AsyncClient(timeout=2) as client:
            while True:
                if self.process.returncode is not None:
                    raise ModelLoadError(
                        f"the engine exited with code {self.process.returncode} while loading; "
                        f"its output is in this replica's log"
                    )
                with contextlib.suppress(httpx.TransportError):
                    reply = await client.get(self.url + self.preset.ready_path)
                    if reply.status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise ModelLoadError(
                        f"the engine did not answer within "
                        f"{self.spec.engine.startup_timeout_seconds:g}s"
                    )
                await asyncio.sleep(0.2)
        timeout = httpx.Timeout(10, read=self.spec.generation.timeout_seconds)
        self._client = httpx.AsyncClient(timeout=timeout)
        if self.preset.metrics_path is not None:
            self._polling = asyncio.get_running_loop().create_task(self._poll_load())

    async def send(self, path: str, document: dict[str, Any]) -> EngineReply:
        """POST ``document`` to the engine's ``path``. Closing the reply closes its connection,
        which stops the engine's work on it."""
        if self._client is None:
            raise ModelNotReadyError(f"model {self.name!r} is still loading")
        sent = self._client.build_request(
            "POST", self.url + path, content=orjson.dumps(document), headers={"content-type": JSON}
        )
        self.load.open += 1
        try:
            reply = await self._client.send(sent, stream=True)
        except httpx.TransportError as exc:
            self.load.open -= 1
            raise PredictError(f"the engine did not answer: {exc}") from exc
        media = reply.headers.get("content-type", JSON)
        closed = False

        async def close() -> None:
            nonlocal closed
            if not closed:
                closed = True
                self.load.open -= 1
            await reply.aclose()

        return EngineReply(reply.status_code, media, reply.aiter_raw(), reply.aread, close)

    async def exited(self) -> int:
        assert self.process is not None
        return await self.process.wait()

    async def stop(self) -> None:
        """Stop the server (the runtime calls it after the requests in flight finished)."""
        if self._polling is not None:
            self._polling.cancel()
        if self._client is not None:
            await self._client.aclose()
        process = self.process
        if process is None or process.returncode is not None:
            return
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), STOP_SECONDS)
        except TimeoutError:
            process.kill()
            await process.wait()

    async def metrics(self) -> bytes:
        """The engine's own Prometheus metrics, if it serves any."""
        if self.preset.metrics_path is None or self._client is None:
            return b""
        try:
            reply = await self._client.get(self.url + self.preset.metrics_path, timeout=5)
        except httpx.TransportError:
            return b""
        return reply.content if reply.status_code == 200 else b""

    async def _poll_load(self) -> None:
        """Read the engine's state from its metrics, for the gateway's balancing."""
        while True:
            exposition = await self.metrics()
            with contextlib.suppress(ValueError):  # not an exposition: the count stands
                self.load.note(exposition.decode(errors="replace"), time.monotonic())
            await asyncio.sleep(POLL_SECONDS)
