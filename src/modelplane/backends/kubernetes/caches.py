"""What the operator's watches say: every Model, and every object the operator owns grouped by
kind and by the Model that owns it. Watch events keep them current, list calls replace them
(``replace_*``), and the operator's own writes update them at once, so a reconcile pass reads
nothing else and a converged Model costs no API call.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType

from modelplane.api import Model
from modelplane.backends.kubernetes.children import LABEL_MODEL
from modelplane.backends.kubernetes.observed import Body, older

NONE: Mapping[str, Body] = MappingProxyType({})


class WatchCaches:
    def __init__(self, kinds: Iterable[str]) -> None:
        self.models: dict[str, Body] = {}  # by "namespace/name"
        self._owned: dict[str, dict[str, dict[str, Body]]] = {kind: {} for kind in kinds}

    def observe_model(self, event_type: str | None, body: Body) -> str | None:
        """The Model's key; None for a late event (what a write of ours returned is newer)."""
        key = key_of(body)
        if event_type == "DELETED":
            self.models.pop(key, None)
        elif older(body, self.models.get(key)):
            return None
        else:
            self.models[key] = body
        return key

    def observe_owned(self, kind: str, event_type: str | None, body: Body) -> str | None:
        """The key of the Model that owns ``body``; None for an object of no Model's, or a
        late event."""
        meta = body["metadata"]
        model = (meta.get("labels") or {}).get(LABEL_MODEL)
        if model is None or kind not in self._owned:
            return None
        key = key_of(body, model)
        found = self._owned[kind].setdefault(key, {})
        if event_type == "DELETED":
            found.pop(meta["name"], None)
        elif older(body, found.get(meta["name"])):
            return None
        else:
            found[meta["name"]] = body
        return key

    def replace_models(self, bodies: Iterable[Body]) -> set[str]:
        """Every Model as listed; the keys of those gone meanwhile."""
        listed = {key_of(body): body for body in bodies}
        gone = self.models.keys() - listed.keys()
        self.models = listed
        return gone

    def replace_owned(self, kind: str, bodies: Iterable[Body]) -> None:
        grouped: dict[str, dict[str, Body]] = {}
        for body in bodies:
            model = (body["metadata"].get("labels") or {}).get(LABEL_MODEL)
            if model is not None:
                grouped.setdefault(key_of(body, model), {})[body["metadata"]["name"]] = body
        self._owned[kind] = grouped

    def owned(self, kind: str, key: str) -> Mapping[str, Body]:
        """The objects of ``kind`` labelled for Model ``key``, by name."""
        return self._owned[kind].get(key, NONE)

    def kept(self, kind: str, key: str, body: Body) -> None:
        """An object as a write of ours returned it."""
        self._owned[kind].setdefault(key, {})[body["metadata"]["name"]] = body

    def dropped(self, kind: str, key: str, name: str) -> None:
        self._owned[kind].get(key, {}).pop(name, None)

    def children(self, kind: str, model: Model) -> list[Body]:
        """Children of this very Model (not of a deleted namesake being collected)."""
        return [
            body
            for body in self._owned[kind].get(model.key, {}).values()
            if any(
                o.get("uid") == model.metadata.uid
                for o in body["metadata"].get("ownerReferences") or []
            )
        ]

    def every(self, kind: str) -> list[Body]:
        """Every object of ``kind`` owned by any Model."""
        return [body for owned in self._owned[kind].values() for body in owned.values()]

    def newest_revision(self, key: str) -> str | None:
        """The name of the newest revision known for Model ``key``."""
        found = self._owned["ControllerRevision"].get(key, {}).values()
        newest = max(found, key=lambda body: int(body.get("revision", 0)), default=None)
        return newest["metadata"]["name"] if newest else None

    def in_namespace(self, namespace: str) -> list[str]:
        return [key for key in self.models if key.split("/", 1)[0] == namespace]

    def namespace_models(self, namespace: str) -> list[tuple[str, str, int]]:
        """A namespace's Models: creation time, key, replicas their Deployments ask for."""
        return [
            (str(self.models[key]["metadata"].get("creationTimestamp") or ""), key,
             sum(replicas(d) for d in self._owned["Deployment"].get(key, {}).values()))
            for key in self.in_namespace(namespace)
        ]  # fmt: skip


def replicas(deployment: Body) -> int:
    return int((deployment.get("spec") or {}).get("replicas") or 0)


def key_of(body: Body, model: str | None = None) -> str:
    """``namespace/name`` of the Model ``body`` is, or of ``model`` in its namespace."""
    meta = body["metadata"]
    return f"{meta.get('namespace', 'default')}/{model or meta['name']}"
