"""Kubernetes-shaped metadata and conditions shared by every modelplane resource.

The shapes follow ``metav1.ObjectMeta`` and ``metav1.Condition`` so that kubectl, kstatus, Argo CD
and Flux read modelplane objects without special knowledge.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

# RFC 1123 label: what Kubernetes accepts for names of Services and Deployments we derive.
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
# Room for the "-r<N>" revision suffix within the 63-character DNS label limit.
MAX_NAME_LENGTH = 52

# Model names also name Services on a cluster, which must start with a letter (RFC 1035).
DNS_1035_LABEL = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
Name = Annotated[str, Field(min_length=1, max_length=MAX_NAME_LENGTH, pattern=DNS_1035_LABEL)]
Namespace = Annotated[str, Field(min_length=1, max_length=63, pattern=DNS_LABEL)]


class Wire(BaseModel):
    """Base of every resource type: camelCase on the wire, unknown fields refused."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
    )


class ObjectMeta(Wire):
    name: Name
    namespace: Namespace = "default"
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    uid: str | None = None
    resource_version: str | None = None
    generation: int | None = None
    creation_timestamp: datetime | None = None
    deletion_timestamp: datetime | None = None


class ConditionStatus(StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(Wire):
    """One aspect of an object's state, as ``metav1.Condition``."""

    type: Annotated[str, Field(pattern=r"^[A-Z][A-Za-z0-9]*$", max_length=316)]
    status: ConditionStatus
    reason: Annotated[str, Field(pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")]
    message: str = ""
    last_transition_time: datetime = Field(default_factory=lambda: datetime.now(UTC))
    observed_generation: int | None = None
