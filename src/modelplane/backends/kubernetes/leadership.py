"""Leader election on a ``coordination.k8s.io/v1`` Lease, so that two operator replicas can run
and only one of them writes: ``running.run`` waits in ``acquire`` before it starts the operator,
runs ``keep`` beside it, and stops the process when ``keep`` returns; ``writing.ClusterWrites``
asks ``check`` before every write.

Timing follows client-go's defaults: a Lease lasts 15 s, the holder renews every 2 s and stops
writing once its last successful renewal is 10 s old (the renew deadline), which leaves 5 s for
a write already in flight before anyone else may take over. A contender judges expiry by when it
itself last saw the Lease change, never by the holder's clock, so clock skew cannot shorten it.
Every change is an update on the Lease's resourceVersion: of two contenders, one wins.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from lightkube import AsyncClient
from lightkube.models.coordination_v1 import LeaseSpec
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.coordination_v1 import Lease
from prometheus_client import CollectorRegistry, Gauge

from modelplane.backends.kubernetes.writing import translated
from modelplane.errors import (
    KubernetesError,
    LeadershipLostError,
    ModelplaneError,
    NotFoundError,
    NotLeadingError,
)

log = logging.getLogger(__name__)

LEASE_NAME = "modelplane-operator"
DEFAULT_NAMESPACE = "modelplane-system"
POD_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


@dataclass(frozen=True)
class LeaseTiming:
    duration: float = 15.0  # how long a holder that stopped renewing still holds it
    renew_deadline: float = 10.0  # no write once the last renewal is older than this
    retry: float = 2.0  # a holder renews, a contender looks, this often

    def __post_init__(self) -> None:
        if not 0 < self.retry < self.renew_deadline < self.duration:
            raise ValueError(
                f"lease timing needs 0 < retry ({self.retry}) < renew deadline "
                f"({self.renew_deadline}) < duration ({self.duration})"
            )


def default_identity() -> str:
    """The pod's name (its hostname) and the process id: unique among contenders, and
    readable in ``kubectl get lease``."""
    return f"{socket.gethostname()}-{os.getpid()}"


def default_namespace() -> str:
    """The pod's own namespace, or ``modelplane-system`` outside a cluster."""
    try:
        return POD_NAMESPACE_FILE.read_text().strip() or DEFAULT_NAMESPACE
    except OSError:
        return DEFAULT_NAMESPACE


class Leadership:
    """One contender for the Lease ``namespace/name``."""

    def __init__(
        self,
        client: AsyncClient,
        namespace: str,
        identity: str,
        registry: CollectorRegistry,
        timing: LeaseTiming | None = None,
        clock: Callable[[], float] = time.monotonic,
        name: str = LEASE_NAME,
    ) -> None:
        self.client, self.namespace, self.name = client, namespace, name
        self.identity, self.timing, self.clock = identity, timing or LeaseTiming(), clock
        self._renewed: float | None = None  # when the last successful renewal was sent
        self._lease: Lease | None = None  # as last read or written
        self._seen: tuple[str | None, float] = (None, 0.0)  # resourceVersion, first seen at
        self._gauge = Gauge(
            "modelplane_operator_leader",
            "1 while this operator process holds the lease and may write, else 0.",
            ["identity"],
            registry=registry,
        )
        self._gauge.labels(identity).set(0)

    @property
    def where(self) -> str:
        return f"Lease {self.namespace}/{self.name}"

    def fresh(self) -> bool:
        renewed = self._renewed
        return renewed is not None and self.clock() - renewed < self.timing.renew_deadline

    def lost(self, writes: int) -> LeadershipLostError:
        """What ``run`` raises once ``keep`` returned, ``writes``: how many this process made."""
        return LeadershipLostError(
            f"{self.identity} lost {self.where}; writes made: {writes}, none since: exiting "
            "so that a restart contends again"
        )

    def check(self) -> None:
        """Raise unless this process holds the lease and renewed it recently enough to write."""
        if not self.fresh():
            raise NotLeadingError(f"{self.identity} does not hold {self.where} now: not writing")

    async def acquire(self) -> None:
        """Return once this process holds the lease: at once if it is free, else after its
        holder stopped renewing it for a whole lease duration."""
        log.info("%s: waiting for %s", self.identity, self.where)
        while True:
            try:
                if await asyncio.wait_for(self._try_acquire(), self.timing.retry):
                    break
            except (ModelplaneError, TimeoutError) as exc:
                log.warning("%s: %s not acquired yet: %r", self.identity, self.where, exc)
            await asyncio.sleep(self.timing.retry)
        self._gauge.labels(self.identity).set(1)
        log.info("%s: acquired %s", self.identity, self.where)

    async def keep(self) -> None:
        """Renew every retry period; return once the lease is lost (taken, or not renewed in
        time), with ``check`` refusing writes from then on."""
        try:
            while True:
                await asyncio.sleep(self.timing.retry)
                if not self.fresh():
                    log.error("%s: %s not renewed in time", self.identity, self.where)
                    return
                try:
                    if not await asyncio.wait_for(self._renew(), self.timing.retry):
                        return
                except (ModelplaneError, TimeoutError) as exc:
                    log.warning("%s: renewing %s: %r", self.identity, self.where, exc)
        finally:
            self._renewed = None
            self._gauge.labels(self.identity).set(0)

    async def release(self) -> None:
        """Give the lease up on a clean stop, so the other replica takes over at once."""
        lease, self._renewed = self._lease, None
        self._gauge.labels(self.identity).set(0)
        if lease is None or lease.spec is None or lease.spec.holderIdentity != self.identity:
            return
        lease.spec.holderIdentity = None
        lease.spec.leaseDurationSeconds = 1
        try:
            async with translated(f"releasing {self.where}"):
                await asyncio.wait_for(self.client.replace(lease), self.timing.retry)
        except (ModelplaneError, TimeoutError) as exc:
            log.warning(
                "%s: %s not released (it expires instead): %r", self.identity, self.where, exc
            )

    # -- one attempt each ----------------------------------------------------------------------

    async def _try_acquire(self) -> bool:
        sent = self.clock()
        try:
            async with translated(f"reading {self.where}"):
                lease = await self.client.get(Lease, self.name, namespace=self.namespace)
        except NotFoundError:
            return await self._create(sent)
        spec = lease.spec or LeaseSpec()
        version = lease.metadata.resourceVersion if lease.metadata else None
        if version != self._seen[0]:
            self._seen = (version, sent)
        free = not spec.holderIdentity or spec.holderIdentity == self.identity
        duration = spec.leaseDurationSeconds or self.timing.duration
        if not free and sent - self._seen[1] < duration:
            return False  # held, and renewed within a lease duration of our looking
        taken = spec.holderIdentity != self.identity
        spec.holderIdentity = self.identity
        spec.leaseDurationSeconds = round(self.timing.duration)
        spec.acquireTime = spec.renewTime = datetime.now(UTC)
        spec.leaseTransitions = (spec.leaseTransitions or 0) + (1 if taken else 0)
        lease.spec = spec
        return await self._write(lease, sent)

    async def _create(self, sent: float) -> bool:
        now = datetime.now(UTC)
        lease = Lease(
            metadata=ObjectMeta(name=self.name, namespace=self.namespace),
            spec=LeaseSpec(
                holderIdentity=self.identity,
                leaseDurationSeconds=round(self.timing.duration),
                acquireTime=now,
                renewTime=now,
                leaseTransitions=0,
            ),
        )
        try:
            async with translated(f"creating {self.where}"):
                self._lease = await self.client.create(lease)
        except KubernetesError as exc:
            if exc.code == 409:  # another contender created it first
                return False
            raise
        self._renewed = sent
        return True

    async def _renew(self) -> bool:
        """True: renewed; False: the lease is someone else's now."""
        lease = self._lease
        if lease is None or lease.spec is None:
            return False
        sent = self.clock()
        lease.spec.renewTime = datetime.now(UTC)
        if await self._write(lease, sent):
            return True
        async with translated(f"reading {self.where}"):
            current = await self.client.get(Lease, self.name, namespace=self.namespace)
        holder = current.spec.holderIdentity if current.spec else None
        if holder != self.identity:
            log.error("%s: %s is held by %s now", self.identity, self.where, holder)
            return False
        self._lease = current  # ours still, changed by someone else: renew on the newer one
        return True

    async def _write(self, lease: Lease, sent: float) -> bool:
        """Update ``lease`` on its resourceVersion; False when someone changed it first."""
        try:
            async with translated(f"updating {self.where}"):
                written = await self.client.replace(lease)
        except KubernetesError as exc:
            if exc.code == 409:
                return False
            raise
        self._lease, self._renewed = written, sent
        return True
