"""The process supervisor of embedded mode: one ``modelplane serve`` process per replica.

It starts replicas on free loopback ports with a log file each, watches them become ready, and
restarts a replica that exits with exponential backoff, keeping the runtime's last words as the
reason the reconciler reports. A replica belongs to a Model (``namespace/name``) and one of its
revisions: revision names are unique only within a Model, so every question asked of replicas
names both. A replica whose exit code says no restart can cure it (a missing
extra, see ``api/exits.py``) is left failed instead, reported once, never restarted.
Stopping is a drain: SIGTERM lets the runtime finish what it is serving (the gateway stops
routing to it first), then SIGKILL after a grace period.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from modelplane.api.exits import PERMANENT, REASONS
from modelplane.backends.local.replica_logs import replica_log
from modelplane.backends.usage_rollup import Requested
from modelplane.control.reconcile import Phase, ReplicaView
from modelplane.processes import die_with_parent, free_port
from modelplane.telemetry import access
from modelplane.telemetry.logs import logger_of, message_of

log = logging.getLogger(__name__)

READY_POLL_SECONDS = 0.05
BACKOFF_FIRST, BACKOFF_MAX = 0.5, 30.0
STOP_GRACE_SECONDS = 30.0


@dataclass
class Replica:
    id: str
    model: str  # the Model's key, namespace/name
    revision: str
    manifest: Path
    log: Path
    env: dict[str, str] = field(default_factory=dict)  # over the platform's own environment
    requested: Requested = field(default_factory=Requested)  # spec.resources, for usage
    port: int = 0
    phase: Phase = Phase.STARTING
    restarts: int = 0
    reason: str = ""
    failure: str = ""  # the condition reason its last exit named (api/exits.py)
    permanent: bool = False  # no restart cures its failure; then none is tried
    process: asyncio.subprocess.Process | None = None
    task: asyncio.Task[None] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def view(self) -> ReplicaView:
        return ReplicaView(
            self.id, self.revision, self.phase, self.restarts, self.reason, self.failure,
            self.permanent,
        )  # fmt: skip


def _access_options(settings: access.AccessLogSettings) -> list[str]:
    if not settings.enabled:
        return ["--no-access-log"]
    return ["--access-log-sample", repr(settings.sample)]


def last_words(path: Path, limit: int = 400) -> str:
    """The last non-empty line of a replica's log but access lines (requests that finished
    after the failure): the runtime prints its reason there."""
    try:
        with path.open("rb") as handle:
            handle.seek(max(0, path.stat().st_size - 8192))
            lines = [ln.strip() for ln in handle.read().decode(errors="replace").splitlines()]
    except OSError:
        return ""
    said = (ln for ln in reversed(lines) if ln and logger_of(ln) != access.LOGGER)
    return message_of(next(said, ""))[-limit:]


@dataclass
class Supervisor:
    state_dir: Path
    base_dir: Path
    on_change: Callable[[], None] = lambda: None
    replicas: dict[str, Replica] = field(default_factory=dict)
    log_format: str = "text"  # of the replicas' logs, which `modelplane logs` shows
    # Whether the replicas write access lines (to their logs), and what fraction of them.
    access_log: access.AccessLogSettings = field(default_factory=access.AccessLogSettings)
    serve_options: tuple[str, ...] = ()  # more `modelplane serve` options (the artifact cache)
    # Told of every phase a replica enters, STOPPING last: the platform's usage record.
    on_phase: Callable[[Replica], None] = lambda replica: None

    def __post_init__(self) -> None:
        self._ids = itertools.count(1)
        (self.state_dir / "logs").mkdir(parents=True, exist_ok=True)
        self._client = httpx.AsyncClient(timeout=1.0)

    def views(self, model: str | None = None) -> list[ReplicaView]:
        """The replicas of ``model`` (a key), or of every Model."""
        return [r.view() for r in self.replicas.values() if model in (None, r.model)]

    def models(self) -> set[str]:
        """The Models that have replicas, stopping ones included."""
        return {r.model for r in self.replicas.values()}

    def running(self) -> Counter[str]:
        """Replicas per Model, those stopping left out: what counts against a replica cap."""
        return Counter(r.model for r in self.replicas.values() if r.phase is not Phase.STOPPING)

    def ready_endpoints(self, model: str, revision: str) -> list[tuple[str, str]]:
        """(replica id, URL) of the ready replicas of ``model``'s ``revision``."""
        return [
            (r.id, r.endpoint) for r in self._ready() if (r.model, r.revision) == (model, revision)
        ]

    def ready_addresses(self) -> list[tuple[str, str, str, str]]:
        """(model key, revision, replica id, host:port) of every ready replica."""
        return [
            (r.model, r.revision, r.id, r.endpoint.removeprefix("http://")) for r in self._ready()
        ]

    def _ready(self) -> list[Replica]:
        return [r for r in self.replicas.values() if r.phase is Phase.READY]

    def start(
        self,
        model: str,
        revision: str,
        manifest: Path,
        env: dict[str, str] | None = None,
        requested: Requested | None = None,
    ) -> Replica:
        """A replica of ``model``'s (a key) ``revision``, served from ``manifest``."""
        replica_id = f"{revision}-{next(self._ids)}"
        namespace = model.split("/", 1)[0]
        log_file = replica_log(self.state_dir / "logs", namespace, replica_id)
        replica = Replica(replica_id, model, revision, manifest, log_file, env=dict(env or {}),
                          requested=requested or Requested())  # fmt: skip
        self.replicas[replica_id] = replica
        self.on_phase(replica)
        replica.task = asyncio.get_running_loop().create_task(
            self._keep_running(replica), name=f"replica {replica_id}"
        )
        return replica

    async def stop(self, replica_id: str) -> None:
        replica = self.replicas.get(replica_id)
        if replica is None:
            return
        self._enter(replica, Phase.STOPPING)
        self.on_change()
        if replica.task is not None:
            replica.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await replica.task
        await self._terminate(replica)
        self.replicas.pop(replica_id, None)
        self.on_change()

    async def close(self) -> None:
        await asyncio.gather(*(self.stop(r) for r in list(self.replicas)))
        await self._client.aclose()

    async def _keep_running(self, replica: Replica) -> None:
        backoff = BACKOFF_FIRST
        while True:
            started = time.monotonic()
            code = await self._run_once(replica)
            self._enter(replica, Phase.FAILED)
            replica.reason = last_words(replica.log) or f"exited with code {code}"
            replica.failure, replica.permanent = REASONS.get(code, ""), code in PERMANENT
            if replica.permanent:
                message = "replica %s failed for good, not restarted (%s): %s"
                log.error(message, replica.id, code, replica.reason)
                self.on_change()
                return
            replica.restarts += 1
            log.warning("replica %s exited (%s): %s", replica.id, code, replica.reason)
            self.on_change()
            if time.monotonic() - started > 60:
                backoff = BACKOFF_FIRST  # it ran fine for a while: a fresh failure
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX)

    async def _run_once(self, replica: Replica) -> int:
        replica.port = free_port()
        self._enter(replica, Phase.STARTING)
        with replica.log.open("ab") as handle:
            replica.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "modelplane", "serve", "-f", str(replica.manifest),
                "--port", str(replica.port), "--model-version", replica.revision,
                "--log-level", "warning", "--log-format", self.log_format,
                *_access_options(self.access_log), *self.serve_options,
                stdout=handle, stderr=handle, cwd=self.base_dir, env={**os.environ, **replica.env},
                start_new_session=True, preexec_fn=die_with_parent,
            )  # fmt: skip
        self.on_change()
        waiter = asyncio.get_running_loop().create_task(replica.process.wait())
        try:
            await self._wait_ready(replica, waiter)
            return await waiter
        finally:
            waiter.cancel()

    async def _wait_ready(self, replica: Replica, exited: asyncio.Task[int]) -> None:
        while not exited.done():
            try:
                reply = await self._client.get(f"{replica.endpoint}/v2/health/ready")
                if reply.status_code == 200:
                    self._enter(replica, Phase.READY)
                    replica.reason = ""
                    replica.failure = ""
                    self.on_change()
                    return
            except httpx.TransportError:
                pass
            await asyncio.wait({exited}, timeout=READY_POLL_SECONDS)

    def _enter(self, replica: Replica, phase: Phase) -> None:
        replica.phase = phase
        self.on_phase(replica)

    async def _terminate(self, replica: Replica) -> None:
        process = replica.process
        if process is None or process.returncode is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), STOP_GRACE_SECONDS)
        except TimeoutError:
            process.kill()
            await process.wait()
