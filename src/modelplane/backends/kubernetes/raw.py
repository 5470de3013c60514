"""The raw JSON of the Kubernetes objects the operator reads, as TypedDicts: only the fields it
reads, each optional as the API server may leave it out. Watch events and lists arrive as plain
dicts (``observed.Body``); ``as_pod`` and ``as_revision`` are where they are taken to have these
shapes, and mypy checks every read after that."""

from __future__ import annotations

from typing import Any, TypedDict, cast


class RawMeta(TypedDict, total=False):
    name: str
    namespace: str
    uid: str
    labels: dict[str, str]
    annotations: dict[str, str]
    resourceVersion: str
    creationTimestamp: str
    deletionTimestamp: str


class RawTerminated(TypedDict, total=False):
    exitCode: int
    reason: str
    message: str


class RawWaiting(TypedDict, total=False):
    reason: str
    message: str


class RawLastState(TypedDict, total=False):
    terminated: RawTerminated


class RawState(TypedDict, total=False):
    waiting: RawWaiting


class RawContainerStatus(TypedDict, total=False):
    restartCount: int
    state: RawState
    lastState: RawLastState


class RawCondition(TypedDict, total=False):
    type: str
    status: str


class RawPodStatus(TypedDict, total=False):
    phase: str
    conditions: list[RawCondition]
    containerStatuses: list[RawContainerStatus]
    initContainerStatuses: list[RawContainerStatus]


class RawPod(TypedDict, total=False):
    metadata: RawMeta
    status: RawPodStatus


class RawRevisionData(TypedDict, total=False):
    digest: str
    spec: dict[str, Any]


class RawControllerRevision(TypedDict, total=False):
    metadata: RawMeta
    revision: int
    data: RawRevisionData


def as_pod(body: dict[str, Any]) -> RawPod:
    return cast(RawPod, body)


def as_revision(body: dict[str, Any]) -> RawControllerRevision:
    return cast(RawControllerRevision, body)
