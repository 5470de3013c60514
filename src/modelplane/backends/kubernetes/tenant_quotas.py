"""The cluster gateway's quotas: each tenant's from its Namespace's ``quota.modelplane.io/*``
annotations (``api.quotas``), and this gateway's share of them from how many gateways
serve beside it (the ready endpoints of the gateway's own Service).

An annotation that does not parse leaves the namespace's last good quota in force (a typo must
not lift a tenant's limits) and is logged once per change, naming the annotation and the value;
a gateway that starts meanwhile has no last good quota, and enforces none there.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from lightkube import AsyncClient
from lightkube.resources.core_v1 import Namespace
from lightkube.resources.discovery_v1 import EndpointSlice

from modelplane.api.quotas import Quota, QuotaBoard, quota_from_annotations
from modelplane.backends.kubernetes.following import follow
from modelplane.backends.kubernetes.observed import Body
from modelplane.errors import SpecError

log = logging.getLogger(__name__)

SERVICE_NAME_LABEL = "kubernetes.io/service-name"


@dataclass
class TenantQuotas:
    client: AsyncClient
    quotas: QuotaBoard
    peers: tuple[str, str] | None = None  # the gateways' Service (namespace, name); None: alone
    ready: asyncio.Event = field(default_factory=asyncio.Event)  # first lists in
    _set: set[str] = field(default_factory=set)  # namespaces with a quota in force
    _refused: dict[str, str] = field(default_factory=dict)  # namespace -> what was wrong
    _slices: dict[str, Body] = field(default_factory=dict)  # the peers' EndpointSlices by name
    _peer_count: int = 0

    async def run(self) -> None:
        listed = [asyncio.Event()]
        follows = [follow(self.client, Namespace, None, None, self._replace_namespaces,
                          self._namespace_event, listed[0])]  # fmt: skip
        if self.peers is not None:
            listed.append(asyncio.Event())
            namespace, service = self.peers
            follows.append(
                follow(self.client, EndpointSlice, namespace, {SERVICE_NAME_LABEL: service},
                       self._replace_slices, self._slice_event, listed[1])
            )  # fmt: skip
        tasks = [asyncio.create_task(f) for f in follows]
        try:
            await asyncio.gather(*(e.wait() for e in listed))
            self.ready.set()
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()

    # -- tenants --------------------------------------------------------------------------------

    def _replace_namespaces(self, _: str, bodies: list[Body]) -> None:
        names = {body["metadata"]["name"] for body in bodies}
        for gone in self._set - names:
            self._lift(gone)
        self._refused = {name: error for name, error in self._refused.items() if name in names}
        for body in bodies:
            self._namespace_event("ADDED", body)

    def _namespace_event(self, event_type: str, body: Body) -> None:
        meta = body["metadata"]
        namespace = meta["name"]
        if event_type == "DELETED":
            self._lift(namespace)
            return
        try:
            quota = quota_from_annotations(namespace, meta.get("annotations") or {})
        except SpecError as exc:
            if self._refused.get(namespace) != str(exc):
                kept = "its last valid quota stays" if namespace in self._set else "no quota"
                log.warning("%s; %s in force", exc, kept)
                self._refused[namespace] = str(exc)
            return
        self._refused.pop(namespace, None)
        if quota is None:
            self._lift(namespace)
        elif self.quotas.given(namespace) != quota:
            self.quotas.set(namespace, quota)
            self._set.add(namespace)
            log.info("quota of %s: %s", namespace, _said(quota))

    def _lift(self, namespace: str) -> None:
        self._refused.pop(namespace, None)
        if namespace in self._set:
            self._set.discard(namespace)
            self.quotas.set(namespace, None)
            log.info("quota of %s lifted", namespace)

    # -- peers ----------------------------------------------------------------------------------

    def _replace_slices(self, _: str, bodies: list[Body]) -> None:
        self._slices = {body["metadata"]["name"]: body for body in bodies}
        self._count_peers()

    def _slice_event(self, event_type: str, body: Body) -> None:
        name = body["metadata"]["name"]
        if event_type == "DELETED":
            self._slices.pop(name, None)
        else:
            self._slices[name] = body
        self._count_peers()

    def _count_peers(self) -> None:
        """Every gateway that takes traffic now: the Service's ready endpoints (this one is
        among them once ready; before, or outside the Service, it counts at least itself)."""
        ready = {
            # A pod, once (dual-stack Services list it in an IPv4 and an IPv6 slice).
            (endpoint.get("targetRef") or {}).get("uid") or address
            for body in self._slices.values()
            for endpoint in body.get("endpoints") or []
            if (endpoint.get("conditions") or {}).get("ready") is not False
            for address in (endpoint.get("addresses") or [])[:1]
        }
        if len(ready) != self._peer_count:
            self._peer_count = len(ready)
            log.info("%d gateways share the quotas", max(1, len(ready)))
            self.quotas.set_peers(len(ready))


def _said(quota: Quota) -> str:
    return ", ".join(f"{name}={value}" for name, value in vars(quota).items() if value is not None)
