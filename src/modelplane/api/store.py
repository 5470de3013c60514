"""What the embedded control plane stores, as its readers see it: the ``Store`` protocol the
control API serves and the embedded controller reconciles from, and the values it returns. The
SQLite implementation is ``backends.local.store``; on a cluster the Kubernetes API is the store.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

from modelplane.api.model import Model
from modelplane.api.releases import Incident, Mark, RevisionHistory

ChangeType = Literal["ADDED", "MODIFIED", "DELETED"]
EventType = Literal["Normal", "Warning"]


@dataclass(frozen=True)
class Change:
    resource_version: int
    type: ChangeType
    model: Model


@dataclass(frozen=True)
class Revision:
    namespace: str
    model: str
    number: int
    digest: str
    spec: dict[str, Any]
    created: datetime

    @property
    def name(self) -> str:
        return f"{self.model}-r{self.number}"


@dataclass(frozen=True)
class Event:
    namespace: str
    object: str
    type: EventType
    reason: str
    message: str
    time: datetime


class Store(Protocol):
    """Models with Kubernetes semantics (``resourceVersion``, ``generation``, a change log that
    watches resume from), their immutable revisions and their events. Errors are the tree's
    ``NotFoundError``, ``AlreadyExistsError``, ``ConflictError`` and ``GoneError``."""

    def on_change(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` after every committed write."""
        ...

    def get(self, namespace: str, name: str) -> Model: ...

    def list_models(self, namespace: str | None = None) -> tuple[list[Model], int]:
        """The Models (of ``namespace``, or all) and the resource version they were read at."""
        ...

    def create(self, model: Model, *, dry_run: bool = False) -> Model: ...

    def update(
        self, model: Model, *, subresource: Literal["", "status"] = "", dry_run: bool = False
    ) -> Model: ...

    def delete(self, namespace: str, name: str, *, dry_run: bool = False) -> Model: ...

    def changes_since(self, resource_version: int) -> list[Change]:
        """Every change after ``resource_version``; GoneError once the log no longer reaches."""
        ...

    def revisions(self, namespace: str, model: str) -> list[Revision]: ...

    def add_revision(
        self, namespace: str, model: str, digest: str, spec: dict[str, Any]
    ) -> Revision: ...

    def record_marks(self, namespace: str, model: str, marks: Sequence[Mark]) -> None:
        """Record release milestones; one already recorded for a revision is kept."""
        ...

    def record_incidents(self, namespace: str, model: str, incidents: Sequence[Incident]) -> None:
        """Record SLO breaches: one beginning opens an incident unless one is open already; one
        ending closes the open one (if any)."""
        ...

    def release_history(self, namespace: str | None = None) -> list[RevisionHistory]:
        """Every revision (of ``namespace``, or all) with its milestones and incidents; safe to
        call from a thread (a report reads it there, off the event loop)."""
        ...

    def record_event(
        self, namespace: str, obj: str, kind: EventType, reason: str, message: str
    ) -> None: ...

    def events(self, namespace: str, obj: str, limit: int = 20) -> list[Event]: ...
