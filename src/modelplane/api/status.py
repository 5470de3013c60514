"""What the control plane reports on a Model (``status``): its revisions and their traffic, the
rollout's state and its last analysis, and the conditions. Written by ``control``, read by every
client; a user never writes it."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import Field

from modelplane.api.meta import Condition, Wire


class RevisionStatus(Wire):
    name: str
    digest: str = ""
    source: str | None = Field(
        default=None,
        description="The artifact the revision serves, its moving reference (a tag, an alias, "
        "a branch) resolved when the revision was made.",
    )
    replicas: int = 0
    ready_replicas: int = 0
    traffic: Annotated[int, Field(ge=0, le=100)] = 0


class MetricVerdict(Wire):
    name: str
    value: float | None = None
    threshold: float
    passed: bool
    measure: str | None = Field(
        default=None, description="How the value was measured, where there is more than one way."
    )


class AnalysisResult(Wire):
    passed: bool
    message: str = ""
    metrics: list[MetricVerdict] = Field(default_factory=list)


class EvaluationResult(Wire):
    """What the evaluation gate measured of the canary (and of the stable revision, when the
    gate is relative to it)."""

    passed: bool
    metric: str
    value: float | None = None  # None: nothing could be measured (the message says why)
    threshold: float
    stable_value: float | None = None
    examples: int = 0
    message: str = ""


ROLLOUT_COMMAND_ANNOTATION = "modelplane.io/rollout-command"
# When the change was made (RFC 3339), set by whoever applies it from a commit: the GitOps sync
# writes the commit's time; release lead time runs from it.
COMMIT_TIME_ANNOTATION = "modelplane.io/commit-time"


class RolloutPhase(StrEnum):
    PROGRESSING = "Progressing"
    PAUSED = "Paused"
    PROMOTED = "Promoted"
    ROLLED_BACK = "RolledBack"
    FAILED = "Failed"


class RolloutStatus(Wire):
    phase: RolloutPhase
    step: int = 0
    step_started_at: datetime | None = None  # None until the canary is ready to take traffic
    message: str = ""
    reason: str = Field(
        default="",
        description="Why the rollout ended where it is, as a machine reads it: for RolledBack, "
        "CanaryFailing, ArtifactUnavailable, EvaluationFailed, AnalysisFailed or "
        "RolloutAborted.",
    )
    evaluation: EvaluationResult | None = None  # the gate's verdict, once it is in
    last_analysis: AnalysisResult | None = None
    last_command: str = ""  # the rollout-command annotation last acted on


class ModelStatus(Wire):
    observed_generation: int | None = None
    conditions: list[Condition] = Field(default_factory=list)
    revisions: list[RevisionStatus] = Field(default_factory=list)
    stable_revision: str | None = None
    canary_revision: str | None = None
    rollout: RolloutStatus | None = None
    url: str | None = None
