"""LoRA adapters a replica serves beside its base model, named by clients as the model.

The list is what the replica is told (``api/adapters.py``): the manifest's, replaced by the file
the control plane keeps up to date while it runs, read again at most once a second when asked.
An adapter is fetched (into the artifact cache, off the model thread) and loaded into the engine
(on it) on its first request; past ``maxLoadedAdapters`` the least recently used one that no
request holds is dropped. An adapter in use is never dropped, so while more adapters than that
have requests running, more stay loaded. An adapter whose source changed is loaded afresh under a
new key; the old one goes once its last request ends.

A failure (the source cannot be fetched, or the file is no adapter of this model) fails that
adapter's requests with :class:`AdapterUnavailableError`, remembered for ``RETRY_SECONDS`` so
that clients do not each pay for a fetch that failed; the base model and other adapters serve on.
Used by the data plane, which holds a lease on the adapter for each request's whole answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import time
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar, runtime_checkable

from pydantic import ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from modelplane.api import Adapter, Source
from modelplane.api.adapters import (
    ADAPTERS_HEADER,
    MAX_REASON_CHARS,
    AdapterList,
    AdapterReport,
)
from modelplane.errors import AdapterUnavailableError, ModelNotFoundError, ModelplaneError

log = logging.getLogger(__name__)

T = TypeVar("T")
REREAD_SECONDS = 1.0
RETRY_SECONDS = 30.0


@runtime_checkable
class AdapterEngine(Protocol):
    """An engine that applies LoRA adapters; called on the model thread."""

    def load_adapter(self, key: str, path: Path) -> None:
        """Load the adapter at ``path`` as ``key``; raise ModelLoadError saying why not."""
        ...

    def unload_adapter(self, key: str) -> bool:
        """Free ``key``; False (and nothing freed) while a sequence still runs with it."""
        ...


class AdapterCatalogue:
    """The adapters this replica is told to serve: ``told`` (the manifest's), replaced by the
    contents of ``file`` while it exists and parses."""

    def __init__(self, told: AdapterList, file: Path | None) -> None:
        self._list, self.file = told, file
        self._seen: tuple[int, int] | None = None  # the file's (mtime_ns, size) last read
        self._read_at = float("-inf")

    def current(self) -> AdapterList:
        now = time.monotonic()
        if self.file is not None and now - self._read_at >= REREAD_SECONDS:
            self._read_at = now
            self._reread(self.file)
        return self._list

    def find(self, name: str) -> Adapter | None:
        return next((a for a in self.current().adapters if a.name == name), None)

    def _reread(self, file: Path) -> None:
        try:
            stat = file.stat()
            seen = (stat.st_mtime_ns, stat.st_size)
            if seen == self._seen:
                return
            self._list = AdapterList.model_validate_json(file.read_bytes())
            self._seen = seen
        except FileNotFoundError:
            return  # not written yet: what the manifest said stands
        except (OSError, ValidationError) as exc:
            log.warning("cannot read the adapter list %s (keeping the last one): %s", file, exc)


@dataclass(frozen=True)
class _Loaded:
    key: str  # the engine's name for this load
    source: Source


@dataclass(frozen=True)
class _Failure:
    source: Source
    reason: str
    at: float


class Adapters:
    """The adapters of one replica, on the event loop: which are loaded, which failed, and the
    lease each request holds on its adapter."""

    def __init__(
        self,
        base: str,
        catalogue: AdapterCatalogue,
        fetch: Callable[[Source], Path],
        on_model_thread: Callable[[Callable[[], bool | None]], Awaitable[bool | None]],
        engine: AdapterEngine,
    ) -> None:
        self.base, self.catalogue, self.fetch, self.engine = base, catalogue, fetch, engine
        self._on_model_thread = on_model_thread
        self._loaded: OrderedDict[str, _Loaded] = OrderedDict()  # least recently used first
        self._retired: set[str] = set()  # keys of replaced or removed adapters, still held
        self._users: Counter[str] = Counter()  # requests per key
        self._failed: dict[str, _Failure] = {}
        self._loading: dict[str, asyncio.Task[_Loaded]] = {}
        self._keys = itertools.count(1)
        self._trimming = asyncio.Lock()

    def resolve(self, model: str) -> str | None:
        """The adapter a request's ``model`` names (``name`` or ``namespace/name``), or None for
        the base model; ModelNotFoundError, listing the adapters, for anything else."""
        name = model.rsplit("/", 1)[-1]
        if name == self.base or self.catalogue.find(name) is not None:
            return None if name == self.base else name
        names = ", ".join(repr(a.name) for a in self.catalogue.current().adapters) or "none"
        raise ModelNotFoundError(
            f"no model or adapter {model!r} here; this runtime serves {self.base!r} and its "
            f"adapters: {names}"
        )

    def names(self) -> list[str]:
        return [a.name for a in self.catalogue.current().adapters]

    @contextlib.asynccontextmanager
    async def lease(self, name: str) -> AsyncIterator[str]:
        """The engine's key of adapter ``name``, loaded and held for the lease's life."""
        while True:
            loaded = await self._ready(name)
            # A request that waited for the load resumes after it: meanwhile a trim may have
            # dropped the adapter (it had no user yet). Held from here on, it is never freed.
            if self._loaded.get(name) is loaded:
                break
        self._users[loaded.key] += 1  # before anything is freed: see _trim
        if len(self._loaded) > self._max_loaded() or self._retired:
            self._spawn_trim()
        try:
            yield loaded.key
        finally:
            self._users[loaded.key] -= 1
            if self._users[loaded.key] == 0:
                del self._users[loaded.key]
                if loaded.key in self._retired or len(self._loaded) > self._max_loaded():
                    self._spawn_trim()

    def report(self) -> AdapterReport:
        """Loaded adapters, most recently used first, and why the listed ones that failed did."""
        listed = {a.name: a.source for a in self.catalogue.current().adapters}
        failed = {
            name: failure.reason[:MAX_REASON_CHARS]
            for name, failure in self._failed.items()
            if listed.get(name) == failure.source
        }
        return AdapterReport(loaded=list(reversed(self._loaded)), failed=failed)

    # -- loading ---------------------------------------------------------------------------------

    async def _ready(self, name: str) -> _Loaded:
        adapter = self.catalogue.find(name)
        if adapter is None:
            self.resolve(name)  # raises, listing what is served now
        assert adapter is not None
        loaded = self._loaded.get(name)
        if loaded is not None and loaded.source == adapter.source:
            self._loaded.move_to_end(name)
            return loaded
        failure = self._failed.get(name)
        if (
            failure is not None
            and failure.source == adapter.source
            and time.monotonic() - failure.at < RETRY_SECONDS
        ):
            raise AdapterUnavailableError(failure.reason)
        loading = self._loading.get(name)
        if loading is None:
            loading = self._loading[name] = asyncio.get_running_loop().create_task(
                self._load(adapter), name=f"load-adapter-{name}"
            )
            loading.add_done_callback(lambda _: self._loading.pop(name, None))
        return await asyncio.shield(loading)

    async def _load(self, adapter: Adapter) -> _Loaded:
        name, key = adapter.name, f"{adapter.name}#{next(self._keys)}"
        try:
            path = await asyncio.to_thread(self.fetch, adapter.source)
        except ModelplaneError as exc:
            why = f"its source {adapter.source.uri} cannot be fetched: {exc}"
            raise self._fail(adapter, why) from exc
        try:
            await self._on_model_thread(lambda: self.engine.load_adapter(key, path))
        except ModelplaneError as exc:
            raise self._fail(adapter, f"it is not a LoRA adapter of this model: {exc}") from exc
        replaced = self._loaded.pop(name, None)
        if replaced is not None:
            self._retired.add(replaced.key)
        loaded = self._loaded[name] = _Loaded(key, adapter.source)
        self._failed.pop(name, None)
        log.info("adapter %s of %s loaded from %s", name, self.base, adapter.source.uri)
        return loaded

    def _fail(self, adapter: Adapter, why: str) -> AdapterUnavailableError:
        reason = f"adapter {adapter.name!r} of model {self.base!r} is unavailable: {why}"
        log.warning("%s", reason)
        self._failed[adapter.name] = _Failure(adapter.source, reason, time.monotonic())
        return AdapterUnavailableError(reason)

    # -- dropping --------------------------------------------------------------------------------

    def _max_loaded(self) -> int:
        return self.catalogue.current().max_loaded

    def _spawn_trim(self) -> None:
        task = asyncio.get_running_loop().create_task(self._trim(), name="trim-adapters")
        task.add_done_callback(_log_failure)

    async def _trim(self) -> None:
        """Free retired adapters and those no longer listed, then the least recently used ones
        past the cap; none that a request holds. An adapter leaves the loaded ones before it is
        freed, so a request that comes meanwhile loads it afresh rather than take a freed one."""
        async with self._trimming:
            listed = set(self.names())
            for name in [n for n in self._loaded if n not in listed]:
                self._retired.add(self._loaded.pop(name).key)
            idle = [n for n, found in self._loaded.items() if not self._users[found.key]]
            for name in idle[: max(0, len(self._loaded) - self._max_loaded())]:
                self._retired.add(self._loaded.pop(name).key)
            for key in [k for k in self._retired if not self._users[k]]:
                if await self._free(key):
                    self._retired.discard(key)

    async def _free(self, key: str) -> bool:
        return bool(await self._on_model_thread(lambda: self.engine.unload_adapter(key)))


def reporting_adapters(app: ASGIApp, dataplane: HasAdapters) -> ASGIApp:
    """``app`` with the replica's :class:`AdapterReport` in a header of every answer, once the
    model serves adapters: what the gateway balances on and the control plane reports."""

    async def reporting(scope: Scope, receive: Receive, send: Send) -> None:
        adapters = dataplane.adapters
        if scope["type"] != "http" or adapters is None:
            await app(scope, receive, send)
            return

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                report = json.dumps(adapters.report().model_dump(), separators=(",", ":"))
                headers = [*message.get("headers", ()), (ADAPTERS_HEADER.encode(), report.encode())]
                message = {**message, "headers": headers}
            await send(message)

        await app(scope, receive, sending)

    return reporting


class HasAdapters(Protocol):
    adapters: Adapters | None


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("dropping adapters failed: %r", task.exception())
