"""The runtime process: one model revision served over HTTP until SIGTERM.

``run`` is what ``modelplane serve`` calls. The socket opens before the model loads, so probes see
``/v2/health/live`` at once and ``/v2/health/ready`` turn 200 only when the model can serve. A model
that fails to load ends the process with :data:`EXIT_LOAD_FAILED` and the reason on stderr, the
signal a supervisor (the embedded backend, or a kubelet) acts on; an artifact that cannot be had,
and a failure no restart can cure (a missing extra), end it with codes of their own
(``api/exits.py``).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import uvicorn
import uvloop
from opentelemetry.trace import TracerProvider
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

from modelplane.api import GENERATIVE_TASKS, Model, Protocol, Source
from modelplane.api.adapters import adapter_list
from modelplane.api.engine_load import EngineLoad
from modelplane.api.exits import EXIT_LOAD_FAILED, EXIT_OK, load_failure_code
from modelplane.artifacts import Fetcher, FetchSettings, artifact_cache, default_cache_dir
from modelplane.artifacts.credentials import credentials_env
from modelplane.artifacts.isolated import fetch_in_child
from modelplane.connections import KEEP_ALIVE_SECONDS, DataPlaneProtocol
from modelplane.errors import ModelLoadError, ModelplaneError
from modelplane.runtime import loading
from modelplane.runtime.adapters import (
    AdapterCatalogue,
    AdapterEngine,
    Adapters,
    reporting_adapters,
)
from modelplane.runtime.batching import Batcher, BatchObservers
from modelplane.runtime.dataplane import DataPlane
from modelplane.runtime.external import ExternalEngine, uses_external_engine
from modelplane.runtime.formats.base import Predictor, Signature, whole_number
from modelplane.runtime.generation import BatchGenerator, Generation, GenerationLimits
from modelplane.runtime.load_reporting import LoadReporting
from modelplane.runtime.openai.passthrough import PassthroughRoutes
from modelplane.runtime.openai.routes import OpenAIRoutes
from modelplane.runtime.openapi import Description
from modelplane.runtime.replies import routing_error
from modelplane.runtime.scheduling import DEFAULT_MAX_WAITING, Scheduler
from modelplane.runtime.v2.inference import InferEndpoint
from modelplane.runtime.v2.routes import V2Routes
from modelplane.telemetry.access import AccessLogSettings, logged
from modelplane.telemetry.artifact_metrics import ArtifactMetrics
from modelplane.telemetry.metrics import CONTENT_TYPE, GenerationMetrics, RuntimeMetrics
from modelplane.telemetry.tracing import TracingMiddleware, tracer

log = logging.getLogger(__name__)


@dataclass
class RuntimeOptions:
    host: str = "127.0.0.1"
    port: int = 8000
    base_dir: Path = field(default_factory=Path.cwd)
    cache_dir: Path | None = None  # default: artifacts.default_cache_dir()
    cache_size: int | None = None  # bytes the artifact cache keeps; None: unbounded
    fetching: FetchSettings = field(default_factory=FetchSettings)
    artifact: Path | None = None  # fetched and verified already (by a pod's init container)
    adapters_file: Path | None = None  # the LoRA adapters to serve now, kept by the platform
    model_version: str = "1"
    shutdown_timeout: float = 30.0
    log_level: str = "info"
    tracer_provider: TracerProvider | None = None  # default: the process's global provider
    access_log: AccessLogSettings = field(default_factory=AccessLogSettings)


@dataclass
class Runtime:
    """One model served: the data plane, its batcher and the thread the model runs on."""

    model: Model
    options: RuntimeOptions
    dataplane: DataPlane = field(init=False)
    on_load_failure: list[asyncio.Event] = field(default_factory=list)
    on_ready: list[Callable[[], None]] = field(default_factory=list)
    exit_code: int = field(init=False, default=EXIT_OK)  # a load failure's, once one happened

    def __post_init__(self) -> None:
        name = self.model.metadata.name
        self.metrics = RuntimeMetrics(name)
        self.dataplane = DataPlane(
            name, self.options.model_version, self.metrics, tracer(self.options.tracer_provider)
        )
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")
        self._fetcher: Fetcher | None = None
        self.artifact_digest: str | None = None  # what was fetched and verified
        self._batcher: Batcher | None = None
        self._scheduler: Scheduler | None = None
        self._generation: Generation | None = None
        spec = self.model.spec
        self.engine: ExternalEngine | None = None
        self.openai: OpenAIRoutes | None = None
        if uses_external_engine(spec):
            self.openai = PassthroughRoutes(
                self.dataplane,
                spec.task,
                spec.runtime.max_request_bytes,
                spec.generation.max_tokens,
            )
        elif spec.protocols and Protocol.OPENAI in spec.protocols:
            self.openai = OpenAIRoutes(self.dataplane, spec.task, spec.runtime.max_request_bytes)

    def app(self) -> ASGIApp:
        described = Description(self.dataplane, self.model.spec, self.openai is not None)
        routes = [
            *V2Routes(self.dataplane).routes(),
            Route("/metrics", self._metrics),
            Route("/openapi.json", described.serve),
        ]
        if self.openai is not None:
            routes += self.openai.routes()
        rest = Starlette(
            routes=routes,
            lifespan=self._lifespan,
            exception_handlers={HTTPException: routing_error},
        )
        spec = self.model.spec
        infer = InferEndpoint(self.dataplane, spec.runtime.max_request_bytes, rest)
        app = logged(
            reporting_adapters(infer, self.dataplane),
            self.options.access_log,
            self.model.key,
            self.options.model_version,
        )
        chosen = tracer(self.options.tracer_provider)
        app = app if chosen is None else TracingMiddleware(app, chosen)
        if spec.task in GENERATIVE_TASKS:
            # Outermost: the gateway's polls are neither logged nor traced, as scrapes are not.
            app = LoadReporting(app, self._engine_load)
        return app

    def _engine_load(self) -> EngineLoad | None:
        if self.engine is not None:
            return self.engine.load.load(time.monotonic())
        return self._generation.load() if self._generation is not None else None

    async def _metrics(self, request: Request) -> Response:
        exposition = self.metrics.exposition()
        if self.engine is not None:
            exposition += await self.engine.metrics()  # e.g. vllm:*
        return Response(exposition, media_type=CONTENT_TYPE)

    @asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        loader = asyncio.get_running_loop().create_task(self._load(), name="load-model")
        try:
            yield
        finally:
            loader.cancel()
            if self._batcher is not None:
                await self._batcher.close()
            if self._scheduler is not None:
                await self._scheduler.close()
            if self.engine is not None:  # after uvicorn let the requests in flight finish
                await self.engine.stop()
            self._executor.shutdown(wait=False, cancel_futures=True)
            if self._fetcher is not None:
                self._fetcher.close()  # the cache may evict what this replica used

    async def _load(self) -> None:
        spec = self.model.spec
        loop = asyncio.get_running_loop()
        if uses_external_engine(spec):
            await self._start_engine()
            return
        try:
            loaded: Predictor | BatchGenerator = await loop.run_in_executor(
                self._executor, lambda: loading.load(spec, self._fetch)
            )
            if spec.task in GENERATIVE_TASKS:
                self._serve_generator(cast(BatchGenerator, loaded))
            else:
                self._serve_predictor(cast(Predictor, loaded))
        except ModelplaneError as exc:
            self._failed(str(exc), load_failure_code(exc))
            return
        except Exception as exc:
            self._failed(f"unexpected error while loading: {exc!r}")
            return
        log.info("model %s is ready (%s)", self.model.metadata.name, spec.format.value)
        for callback in self.on_ready:
            callback()

    async def _start_engine(self) -> None:
        """Fetch the artifact, start the engine's server and serve through it until it exits."""
        spec, name = self.model.spec, self.model.metadata.name
        loop = asyncio.get_running_loop()
        try:
            path = await loop.run_in_executor(self._executor, lambda: self._fetch(spec.source))
            self.engine = ExternalEngine(spec, name, path)
            await self.engine.start()
        except ModelplaneError as exc:
            self._failed(str(exc), load_failure_code(exc))
            return
        self.dataplane.serve(Signature(platform=spec.format.value), self.engine)
        log.info("model %s is ready (%s engine at %s)", name, spec.format.value, self.engine.url)
        for callback in self.on_ready:
            callback()
        code = await self.engine.exited()
        self._failed(f"the engine exited with code {code}")

    def _fetcher_here(self) -> Fetcher:
        """The fetcher of this replica's cache, made on first use."""
        if self._fetcher is None:
            options = self.options
            cache = artifact_cache(options.cache_dir or default_cache_dir(), options.cache_size)
            metrics = ArtifactMetrics(self.metrics.registry)
            self._fetcher = Fetcher(cache, options.base_dir, options.fetching, metrics)
        return self._fetcher

    def _fetch_adapter(self, source: Source) -> Path:
        """A LoRA adapter's file, from the cache shared with the other replicas."""
        return self._fetcher_here().fetched(source).path

    def _fetch(self, source: Source) -> Path:
        """The artifact, from the cache shared with the other replicas (made on first use, on
        the model's thread: it touches the disk). A source with credentials is fetched by a
        child process that alone gets them."""
        options = self.options
        if options.artifact is not None:
            return options.artifact.resolve()
        cache_dir = options.cache_dir or default_cache_dir()
        fetcher = self._fetcher_here()
        if source.credentials is None:
            fetched = fetcher.fetched(source)
            self.artifact_digest = fetched.digest
            return fetched.path
        if source.sha256 is not None:
            fetcher.hold(source.sha256)  # before the child fetches: nothing evicts it
        env = credentials_env(source)
        found = fetch_in_child(
            self.model, env, cache_dir, options.base_dir, options.fetching.limits
        )
        if found.digest is not None and source.sha256 is None:
            fetcher.hold(found.digest)
        assert found.path is not None  # a fetch, not a --resolve, names the path
        self.artifact_digest = found.digest
        return found.path

    def _serve_generator(self, generator: BatchGenerator) -> None:
        """Serve through the scheduler, which runs the generator's slots on the model thread."""
        spec = self.model.spec
        max_waiting = whole_number(spec.runtime.parameters, "maxWaiting", DEFAULT_MAX_WAITING)
        if max_waiting < 0:
            raise ModelLoadError(
                f"runtime.parameters.maxWaiting must be 0 or more, not {max_waiting}"
            )
        self._scheduler = Scheduler(
            generator,
            GenerationLimits(
                # Engines may round the context up (llama.cpp to 256 tokens); the spec's holds.
                context_length=min(
                    generator.context_length,
                    spec.generation.context_length or generator.context_length,
                ),
                max_tokens=spec.generation.max_tokens,
                timeout=spec.generation.timeout_seconds,
            ),
            GenerationMetrics(self.model.metadata.name, self.metrics.registry),
            max_waiting,
        )
        self._scheduler.start(self._executor)
        if isinstance(generator, AdapterEngine):
            told = AdapterCatalogue(adapter_list(spec), self.options.adapters_file)
            self.dataplane.adapters = Adapters(
                self.model.metadata.name, told, self._fetch_adapter, self._scheduler.call,
                generator,
            )  # fmt: skip
        self._generation = Generation(self._scheduler)
        self.dataplane.serve(Signature(platform=spec.format.value), self._generation)

    def _serve_predictor(self, predictor: Predictor) -> None:
        spec = self.model.spec
        signature = predictor.signature
        outputs = frozenset(s.name for s in signature.outputs)
        self._batcher = Batcher(
            predict=lambda inputs: predictor.predict(inputs, outputs),
            executor=self._executor,
            max_batch_size=spec.batching.max_batch_size,
            max_delay=spec.batching.max_delay_ms / 1000,
            arriving=self.dataplane.arriving,
            batchable=signature.batchable,
            observers=BatchObservers(
                queue_seconds=self.metrics.queue_duration.observe,
                inference_seconds=self.metrics.inference_duration.observe,
                batch_size=self.metrics.batch_size.observe,
            ),
        )
        self._batcher.start()
        self.dataplane.serve(signature, self._batcher)

    def _failed(self, reason: str, exit_code: int = EXIT_LOAD_FAILED) -> None:
        log.error("model %s failed to load: %s", self.model.metadata.name, reason)
        self.exit_code = exit_code
        self.dataplane.fail(reason)
        for event in self.on_load_failure:
            event.set()


class _Server(uvicorn.Server):
    """uvicorn re-raises SIGTERM after a graceful stop, so the process would die by the signal;
    a supervisor should see a clean exit 0 instead. A second signal forces the exit."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop)
        try:
            yield
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)

    def _stop(self) -> None:
        if self.should_exit:
            self.force_exit = True
        self.should_exit = True


async def _serve(runtime: Runtime) -> int:
    options = runtime.options
    config = uvicorn.Config(
        runtime.app(),
        host=options.host,
        port=options.port,
        http=DataPlaneProtocol,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
        loop="none",
        log_level=options.log_level,
        access_log=False,
        log_config=None,  # uvicorn logs through the process's own logging set-up
        proxy_headers=False,
        timeout_graceful_shutdown=int(options.shutdown_timeout),
    )
    server = _Server(config)
    failed = asyncio.Event()
    runtime.on_load_failure.append(failed)

    async def stop_on_failure() -> None:
        await failed.wait()
        server.should_exit = True

    watcher = asyncio.get_running_loop().create_task(stop_on_failure())
    try:
        await server.serve()
    finally:
        watcher.cancel()
    if failed.is_set():
        return runtime.exit_code
    return EXIT_OK if server.started else 1


def run(runtime: Runtime) -> int:
    """Serve until SIGTERM or SIGINT; returns the process exit code."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(_serve(runtime))
