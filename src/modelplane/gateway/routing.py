"""The gateway's routing table: for each model, its revisions' traffic weights and endpoints.

The control plane publishes routes; the proxy reads them on every request. Endpoint objects
survive updates (matched by id) so that in-flight counts and ejections carry over.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

from modelplane.api.routing import EndpointList, ShadowRoute
from modelplane.gateway.engine_state import EngineView

DEFAULT_NAMESPACE = "default"


@dataclass(eq=False)
class Endpoint:
    id: str
    url: str
    revision: str
    outstanding: int = 0
    consecutive_failures: int = 0
    ejected_until: float = 0.0
    engine: EngineView = field(default_factory=EngineView)  # for engine-aware balancing
    # What the replica last reported of its LoRA adapters: those loaded, and why others failed.
    adapters: frozenset[str] = frozenset()
    failed_adapters: dict[str, str] = field(default_factory=dict)
    adapter_report: str = ""  # as it came, so an unchanged report is not parsed again


@dataclass
class RevisionRoute:
    name: str
    weight: int
    endpoints: list[Endpoint] = field(default_factory=list)


@dataclass(frozen=True)
class Shadow:
    """Mirror ``percent`` of the other revisions' requests to ``revision`` and compare by task."""

    revision: str
    percent: float
    task: str


@dataclass
class ModelRoute:
    key: str  # namespace/name
    name: str  # the name the runtime serves
    revisions: list[RevisionRoute] = field(default_factory=list)
    shadow: Shadow | None = None
    canary: str | None = None  # a revision on trial: its failures are retried on the others
    openai: bool = False  # the model speaks the OpenAI API
    adapters: tuple[str, ...] = ()  # its LoRA adapters' names, served by its replicas

    def revision(self, name: str) -> RevisionRoute | None:
        return next((r for r in self.revisions if r.name == name), None)

    def endpoints(self) -> list[Endpoint]:
        """Every replica of every revision the model routes to."""
        return [e for revision in self.revisions for e in revision.endpoints]


def model_key(name: str) -> str:
    """``name`` or ``namespace/name`` as the table's key."""
    return name if "/" in name else f"{DEFAULT_NAMESPACE}/{name}"


class RoutingTable:
    def __init__(self) -> None:
        self._routes: dict[str, ModelRoute] = {}
        self._adapters: dict[str, str] = {}  # namespace/adapter -> the key of its Model
        self._endpoints: dict[str, Endpoint] = {}
        self._changed = asyncio.Event()

    def lookup(self, name: str) -> ModelRoute | None:
        return self._routes.get(model_key(name))

    def adapter_parent(self, name: str) -> ModelRoute | None:
        """The route of the Model whose LoRA adapter ``name`` (``name`` or ``namespace/name``)
        is; a Model of that name is no adapter's (it wins, as its clients expect)."""
        key = model_key(name)
        if key in self._routes:
            return None
        parent = self._adapters.get(key)
        return self._routes.get(parent) if parent is not None else None

    def routes(self) -> list[ModelRoute]:
        return list(self._routes.values())

    def publish(
        self,
        key: str,
        name: str,
        revisions: dict[str, tuple[int, EndpointList]],
        shadow: ShadowRoute | None = None,
        canary: str | None = None,
        *,
        openai: bool = False,
        adapters: tuple[str, ...] = (),
    ) -> None:
        """Set a model's route: revision name -> (weight, [(endpoint id, url)]), and the
        revision that shadow traffic goes to: (revision, percent, task)."""
        shadowed = Shadow(*shadow) if shadow else None
        route = ModelRoute(key, name, shadow=shadowed, canary=canary, openai=openai,
                           adapters=tuple(adapters))  # fmt: skip
        for revision, (weight, endpoints) in revisions.items():
            kept = [self._endpoint(eid, url, revision) for eid, url in endpoints]
            route.revisions.append(RevisionRoute(revision, weight, kept))
        self._routes[key] = route
        self._index_adapters()
        self._forget_unused()
        self._wake()

    def remove(self, key: str) -> None:
        if self._routes.pop(key, None) is not None:
            self._index_adapters()
            self._forget_unused()
            self._wake()

    def _index_adapters(self) -> None:
        """Adapter names to their Models; where two Models of a namespace name the same adapter,
        the first by key has it."""
        index: dict[str, str] = {}
        for key in sorted(self._routes):
            namespace = key.split("/", 1)[0]
            for adapter in self._routes[key].adapters:
                index.setdefault(f"{namespace}/{adapter}", key)
        self._adapters = index

    async def wait_changed(self, seconds: float) -> None:
        """Wait until the next publish, or ``seconds``."""
        event = self._changed
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), seconds)

    def _endpoint(self, endpoint_id: str, url: str, revision: str) -> Endpoint:
        endpoint = self._endpoints.get(endpoint_id)
        if endpoint is None or endpoint.url != url:
            endpoint = self._endpoints[endpoint_id] = Endpoint(endpoint_id, url, revision)
        return endpoint

    def _forget_unused(self) -> None:
        used = {e.id for r in self._routes.values() for rev in r.revisions for e in rev.endpoints}
        for endpoint_id in list(self._endpoints):
            if endpoint_id not in used:
                del self._endpoints[endpoint_id]

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()
