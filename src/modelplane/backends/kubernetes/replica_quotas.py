"""The operator's side of tenants' quotas: the replicas all of a namespace's Models may run
together (``quota.modelplane.io/max-replicas`` on the Namespace, as the gateways read the rest).

The cap is shared out in the order the Models were created: each gets what it wants while the
older ones leave room, decided from what each Model last wanted (or, before its first pass
here, the replicas it runs). An older Model never depends on a younger one, so operator
workers deciding side by side converge, where "what the others run now" would make two Models
take turns shrinking. A Model the cap holds back gets one ``ReplicaQuotaReached`` event per
episode. An annotation that does not parse leaves the last valid cap in force, said once per
error (the gateways log the same error).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from modelplane.api import Model
from modelplane.backends.kubernetes.observed import Body
from modelplane.backends.quota_spec import quota_from_annotations
from modelplane.control.rollout import Event
from modelplane.errors import SpecError

log = logging.getLogger(__name__)


class ReplicaQuotas:
    def __init__(self, changed: Callable[[str], None]) -> None:
        self._changed = changed  # a namespace's cap changed: its Models need a pass
        self._limits: dict[str, int] = {}
        self._limited: set[str] = set()  # Models held back now (said once)
        self._wanted: dict[str, int] = {}  # what each Model wanted at its last pass
        self._refused: dict[str, str] = {}  # a namespace's annotation error, logged once

    def replace_namespaces(self, _: str, bodies: list[Body]) -> None:
        """The Namespaces as listed (a fresh list also drops the deleted ones)."""
        names = {body["metadata"]["name"] for body in bodies}
        for gone in set(self._limits) - names:
            self._set(gone, None)
        self._refused = {name: error for name, error in self._refused.items() if name in names}
        for body in bodies:
            self.observe_namespace("ADDED", body)

    def observe_namespace(self, event_type: str, body: Body) -> None:
        name = body["metadata"]["name"]
        if event_type == "DELETED":
            self._refused.pop(name, None)
            self._set(name, None)
            return
        try:
            quota = quota_from_annotations(name, body["metadata"].get("annotations") or {})
        except SpecError as exc:
            if self._refused.get(name) != str(exc):  # every Namespace update would repeat it
                log.warning("%s; the last valid replica cap stays in force", exc)
                self._refused[name] = str(exc)
            return
        self._refused.pop(name, None)
        self._set(name, quota.max_replicas if quota is not None else None)

    def _set(self, namespace: str, limit: int | None) -> None:
        if self._limits.get(namespace) == limit:
            return
        if limit is None:
            del self._limits[namespace]
        else:
            self._limits[namespace] = limit
        self._changed(namespace)

    def forget(self, key: str) -> None:
        self._limited.discard(key)
        self._wanted.pop(key, None)

    def within(
        self, model: Model, wanted: int, namespace_models: Callable[[], list[tuple[str, str, int]]]
    ) -> tuple[int, Event | None]:
        """``wanted``, or as many as the cap leaves after the Models created before this one
        (``namespace_models`` lists each Model of the namespace as creation time, key and
        replicas running; called only under a cap), with an event the first time it holds
        back."""
        namespace, key = model.metadata.namespace, model.key
        if self._wanted.get(key) != wanted:
            self._wanted[key] = wanted
            if namespace in self._limits:  # younger Models may get more room, or less
                self._changed(namespace)
        limit = self._limits.get(namespace)
        if limit is None:
            self._limited.discard(key)
            return wanted, None
        others = 0
        for _, other, running in sorted(namespace_models()):
            if other == key:
                break
            others += min(self._wanted.get(other, running), max(0, limit - others))
        allowed = max(0, limit - others)
        if wanted <= allowed:
            self._limited.discard(key)
            return wanted, None
        if key in self._limited:
            return allowed, None
        self._limited.add(key)
        message = (
            f"{wanted} replicas wanted, {allowed} allowed: namespace {namespace!r} may run "
            f"{limit} in all and Models created before it take {others}"
        )
        return allowed, Event("Warning", "ReplicaQuotaReached", message)
