"""A tenant's quota as users write it: the embedded platform's ``/quotas`` body, and on a
cluster the ``quota.modelplane.io/*`` annotations of the tenant's Namespace.

Annotations, because on a cluster a quota is the platform team's word on a tenant, and the
Namespace object is theirs: a team that may write Models in its namespace may not annotate the
namespace itself (Kubernetes' default roles give tenants no write on Namespaces), so it cannot
raise its own limits. The annotations travel with the Namespace through git like any manifest.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Protocol

from pydantic import Field, ValidationError, field_validator
from pydantic.alias_generators import to_camel

from modelplane.api.manifests import problems_from
from modelplane.api.meta import Wire
from modelplane.api.priority import Priority
from modelplane.errors import FieldProblem, SpecError

ANNOTATION_PREFIX = "quota.modelplane.io/"
# annotation name (after the prefix) -> QuotaSpec field
ANNOTATIONS = {
    "requests-per-second": "requests_per_second",
    "concurrent-requests": "concurrent_requests",
    "max-replicas": "max_replicas",
    "tokens-per-minute": "tokens_per_minute",
    "priority": "priority",
}


@dataclass(frozen=True)
class Quota:
    """A tenant's limits as the gateways and the controllers enforce them (None: no limit)."""

    requests_per_second: float | None = None
    concurrent_requests: int | None = None
    max_replicas: int | None = None  # across the namespace; the controllers enforce it
    tokens_per_minute: int | None = None  # prompt and completion tokens, OpenAI API requests
    # In a gateway's waiting room, for requests whose API key sets none (None: interactive).
    priority: Priority | None = None


class QuotaBoard(Protocol):
    """Where quotas are enforced: a gateway's admission. Fed by the control API (embedded) or
    from Namespaces' annotations (a cluster's gateways)."""

    def set(self, namespace: str, quota: Quota | None) -> None: ...

    def given(self, namespace: str) -> Quota | None: ...

    def set_peers(self, peers: int) -> None:
        """``peers`` gateways share every limit but the replica cap equally."""
        ...


class QuotaSpec(Wire):
    requests_per_second: Annotated[float, Field(gt=0, le=1_000_000)] | None = None
    concurrent_requests: Annotated[int, Field(ge=1, le=1_000_000)] | None = None
    max_replicas: Annotated[int, Field(ge=0, le=100_000)] | None = None
    tokens_per_minute: Annotated[int, Field(ge=1, le=10_000_000_000)] | None = None
    priority: Priority | None = None

    @field_validator("*", mode="before")
    @classmethod
    def _not_a_boolean(cls, value: object) -> object:
        if isinstance(value, bool):  # JSON true is not the number 1
            raise ValueError("must be a number, not true or false")
        return value

    def quota(self) -> Quota:
        return Quota(
            self.requests_per_second,
            self.concurrent_requests,
            self.max_replicas,
            self.tokens_per_minute,
            self.priority,
        )


def quota_from_annotations(namespace: str, annotations: Mapping[str, str]) -> Quota | None:
    """The quota a Namespace's annotations set (None: they set none), or SpecError naming each
    annotation that is unknown or holds no valid number."""
    ours = {k.removeprefix(ANNOTATION_PREFIX): v for k, v in annotations.items()
            if k.startswith(ANNOTATION_PREFIX)}  # fmt: skip
    if not ours:
        return None
    unknown = sorted(set(ours) - ANNOTATIONS.keys())
    if unknown:
        known = ", ".join(ANNOTATION_PREFIX + name for name in ANNOTATIONS)
        raise SpecError(
            f"namespace {namespace!r}: unknown quota annotation "
            f"{', '.join(ANNOTATION_PREFIX + name for name in unknown)} (known: {known})"
        )
    fields = {to_camel(ANNOTATIONS[name]): value.strip() for name, value in ours.items()}
    try:
        return QuotaSpec.model_validate(fields).quota()
    except ValidationError as exc:
        named = {to_camel(field): ANNOTATION_PREFIX + name for name, field in ANNOTATIONS.items()}
        problems = [FieldProblem(named.get(p.path, p.path), p.message) for p in problems_from(exc)]
        raise SpecError(f"namespace {namespace!r}: invalid quota annotations", problems) from exc
