"""Which revision a Model serves next: the newest stored one while the serving fields are
unchanged, else a new one numbered after it. One rule for both modes: revisions are immutable,
numbered per Model, and a spec edited back to an older revision's fields still makes a new one
(the history says what was served when)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from modelplane.api import Model, revision_digest, revision_name


@dataclass(frozen=True)
class RevisionRef:
    name: str
    number: int
    digest: str
    # The artifact's immutable reference, as the revision recorded it (not part of its identity).
    source: str = field(default="", compare=False)


def select_revision(
    model: Model, stored: Sequence[RevisionRef], source: str = ""
) -> tuple[RevisionRef, bool]:
    """The revision ``model`` serves and whether it is new (the backend records it before it
    applies anything else). ``stored``: the Model's revisions, in any order; ``source``: what a
    new one records as its artifact (default: the spec's)."""
    digest = revision_digest(model.spec)
    newest = max(stored, key=lambda r: r.number, default=None)
    if newest is not None and newest.digest == digest:
        return newest, False
    number = newest.number + 1 if newest is not None else 1
    name = revision_name(model.metadata.name, number)
    return RevisionRef(name, number, digest, source or model.spec.source.uri), True
