"""The operator's side of tenants' quotas: the replicas all of a namespace's Models may run
together (``quota.modelplane.io/max-replicas`` on the Namespace, as the gateways read the rest).

What is observed for ``control.quotas``, which shares the cap out: each namespace's cap, and
what each Model last wanted (its claim). A Model's claim that changes queues its namespace's
Models, whose room it may change. An annotation that does not parse leaves the last valid cap
in force, said once per error (the gateways log the same error).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from modelplane.api.quotas import quota_from_annotations
from modelplane.backends.kubernetes.observed import Body
from modelplane.control.quotas import ReplicaCap, claims_from
from modelplane.errors import SpecError

log = logging.getLogger(__name__)


class ReplicaQuotas:
    def __init__(self, changed: Callable[[str], None]) -> None:
        self._changed = changed  # a namespace's cap changed: its Models need a pass
        self._limits: dict[str, int] = {}
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
        self._wanted.pop(key, None)

    def claim(self, namespace: str, key: str, wanted: int) -> None:
        """What ``key`` wants now; under a cap, its namespace's Models are asked to look again
        when that changes (younger Models may get more room, or less)."""
        if self._wanted.get(key) == wanted:
            return
        self._wanted[key] = wanted
        if namespace in self._limits:
            self._changed(namespace)

    def cap(
        self, namespace: str, namespace_models: Callable[[], list[tuple[str, str, int]]]
    ) -> ReplicaCap | None:
        """The namespace's cap and its Models' claims (``namespace_models`` lists each Model
        as creation time, key and replicas running; called only under a cap)."""
        limit = self._limits.get(namespace)
        if limit is None:
            return None
        found = [(_parsed(created), key, running) for created, key, running in namespace_models()]
        return ReplicaCap(limit, claims_from(found, self._wanted))


def _parsed(stamp: str) -> datetime:
    """A creationTimestamp; one that does not parse sorts last."""
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return datetime.max.replace(tzinfo=UTC)
