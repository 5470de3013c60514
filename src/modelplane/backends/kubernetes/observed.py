"""What the cluster shows, in the terms of ``modelplane.control``: pods as replica views,
ControllerRevisions as a Model's immutable revisions, raw objects as ``Model``s."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from modelplane.api import Model, ModelSpec, ModelStatus, ObjectMeta
from modelplane.api.exits import REASONS
from modelplane.api.manifests import parse_model
from modelplane.backends.kubernetes.children import LABEL_REVISION, RUNTIME_PORT
from modelplane.backends.kubernetes.raw import (
    RawContainerStatus,
    RawLastState,
    RawMeta,
    RawPodStatus,
    RawRevisionData,
    RawState,
    RawTerminated,
    RawWaiting,
    as_pod,
    as_revision,
)
from modelplane.control.reconcile import Phase, ReplicaView
from modelplane.control.revisions import RevisionRef

Body = dict[str, Any]

_META_FIELDS = (
    "name", "namespace", "labels", "annotations", "uid", "resourceVersion", "generation",
    "creationTimestamp", "deletionTimestamp",
)  # fmt: skip


@dataclass(frozen=True)
class StoredRevision:
    ref: RevisionRef
    spec: ModelSpec


def model_from(body: Body) -> Model:
    """A Model from the API server's object. The spec must validate (``SpecError`` if not);
    a status that does not is dropped, as if the Model had none."""
    model = parse_model(
        {"apiVersion": body["apiVersion"], "kind": body["kind"], "metadata": _metadata(body),
         "spec": body.get("spec", {})}
    )  # fmt: skip
    with contextlib.suppress(ValidationError):
        model.status = ModelStatus.model_validate(body.get("status") or {})
    return model


def meta_of(body: Body) -> ObjectMeta:
    return ObjectMeta.model_validate(_metadata(body))


def _metadata(body: Body) -> Body:
    """The metadata fields ``ObjectMeta`` knows; the server's others (managedFields …) go."""
    return {k: v for k, v in body.get("metadata", {}).items() if k in _META_FIELDS}


def replica_view(body: Body) -> ReplicaView:
    pod = as_pod(body)
    meta, status = pod.get("metadata", RawMeta()), pod.get("status", RawPodStatus())
    name = meta.get("name", "")
    revision = meta.get("labels", {}).get(LABEL_REVISION, "")
    # The fetch step first: while it fails, the model container never starts.
    containers = [
        *(status.get("initContainerStatuses") or []),
        *(status.get("containerStatuses") or []),
    ]
    restarts = sum(int(c.get("restartCount", 0)) for c in containers)
    if meta.get("deletionTimestamp"):
        return ReplicaView(name, revision, Phase.STOPPING, restarts)
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )
    if ready:
        return ReplicaView(name, revision, Phase.READY, restarts)
    reason = _failure(containers)
    if status.get("phase") == "Failed" or (reason and restarts):
        code = _exit_code(containers)
        failure = REASONS.get(code, "") if code is not None else ""
        return ReplicaView(name, revision, Phase.FAILED, restarts, reason, failure)
    return ReplicaView(name, revision, Phase.STARTING, restarts, reason)


def ready_pod_url(pods: Iterable[Body], revision: str | None) -> str | None:
    """The runtime's URL on a ready pod of ``revision`` (by its IP), if there is one."""
    return next(iter(ready_pod_urls(pods, revision)), None)


def ready_pod_urls(pods: Iterable[Body], revision: str | None) -> list[str]:
    """The runtime's URL on every ready pod of ``revision``, by its IP."""
    found = []
    for body in pods:
        view = replica_view(body)
        address = (body.get("status") or {}).get("podIP")
        if view.revision == revision and view.phase is Phase.READY and address:
            host = f"[{address}]" if ":" in address else address
            found.append(f"http://{host}:{RUNTIME_PORT}")
    return found


def _failure(containers: list[RawContainerStatus]) -> str:
    """The last words of a failing container: its termination message, or why it waits."""
    for container in containers:
        last = (container.get("lastState") or RawLastState()).get("terminated") or RawTerminated()
        waiting = (container.get("state") or RawState()).get("waiting") or RawWaiting()
        if last:
            said = (last.get("message") or "").strip().splitlines()
            return said[-1] if said else f"exited {last.get('exitCode')} ({last.get('reason')})"
        if waiting.get("reason") in ("CrashLoopBackOff", "ErrImagePull", "ImagePullBackOff"):
            return f"{waiting['reason']}: {waiting.get('message', '')}".strip(": ")
    return ""


def _exit_code(containers: list[RawContainerStatus]) -> int | None:
    for container in containers:
        last = (container.get("lastState") or RawLastState()).get("terminated") or RawTerminated()
        if last:
            return int(last.get("exitCode", 0))
    return None


def stored_revision(body: Body) -> StoredRevision:
    revision = as_revision(body)
    data = revision.get("data") or RawRevisionData()
    name = revision.get("metadata", RawMeta()).get("name", "")
    spec = ModelSpec.model_validate(data.get("spec", {}))
    number = int(revision.get("revision", 0))
    return StoredRevision(RevisionRef(name, number, data.get("digest", ""), spec.source.uri), spec)


def without_managed_fields(body: Body) -> Body:
    """managedFields are the bulk of most objects and never read here: not kept."""
    meta = {k: v for k, v in body["metadata"].items() if k != "managedFields"}
    return {**body, "metadata": meta}


def older(body: Body, cached: Body | None) -> bool:
    """Whether ``body`` is an older state of the same object than ``cached``. Resource
    versions are etcd revisions in practice; where they do not parse, nothing is older."""
    if cached is None or cached["metadata"].get("uid") != body["metadata"].get("uid"):
        return False
    try:
        return int(body["metadata"]["resourceVersion"]) < int(cached["metadata"]["resourceVersion"])
    except (KeyError, TypeError, ValueError):
        return False


def as_dict(found: Any) -> Body:
    """A lightkube object (typed or generic) as the plain dict a watch would give."""
    body: Body = found.to_dict() if hasattr(found, "to_dict") else dict(found)
    body.get("metadata", {}).pop("managedFields", None)
    return body
