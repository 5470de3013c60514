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
    reason: str = Field(
        default="",
        description="Why the gate failed when the model was not to blame: ScorerFailed when "
        "the scorer cannot be imported where the gate runs, raises, or returns anything but a "
        "number in [0, 1]. The rollout ends with this reason instead of EvaluationFailed.",
    )


ROLLOUT_COMMAND_ANNOTATION = "modelplane.io/rollout-command"
# When the change was made (RFC 3339), set by whoever applies it from a commit: the GitOps sync
# writes the commit's time; release lead time runs from it.
COMMIT_TIME_ANNOTATION = "modelplane.io/commit-time"
# Lets a spec change through a release freeze (spec.slo.freeze with the budget spent); the
# value says why, and is recorded with the event that tells of it.
FREEZE_OVERRIDE_ANNOTATION = "modelplane.io/freeze-override"


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
        "CanaryFailing, ArtifactUnavailable, EvaluationFailed, ScorerFailed, AnalysisFailed or "
        "RolloutAborted.",
    )
    evaluation: EvaluationResult | None = None  # the gate's verdict, once it is in
    last_analysis: AnalysisResult | None = None
    last_command: str = ""  # the rollout-command annotation last acted on


class BurnRate(Wire):
    """How fast one window spent the error budget: 1 spends exactly the budget over the SLO's
    window, 14.4 spends 2% of a 30-day budget in an hour."""

    window: str
    availability: float | None = None  # None: no requests in the window
    latency: float | None = None  # with a latency objective


class SLOStatus(Wire):
    """What the objective's window measured, and how fast the budget burns."""

    window: str
    requests: int = 0
    availability: float | None = Field(
        default=None, description="The share of the window's requests that succeeded."
    )
    budget_remaining: float | None = Field(
        default=None,
        description="The share of the window's error budget left: 1 untouched, 0 spent, below "
        "0 overspent.",
    )
    latency: float | None = Field(
        default=None, description="The share of the window's requests within latencyP99Ms."
    )
    latency_budget_remaining: float | None = None
    burn_rates: list[BurnRate] = Field(default_factory=list)
    alerts: list[str] = Field(
        default_factory=list,
        description="Burn-rate alerts firing, as 'page: 14.4x over 1h and 5m'.",
    )
    uncovered: list[str] = Field(
        default_factory=list,
        description="Windows longer than the counts reach back (a platform without Prometheus "
        "counts since it started): measured over what there is.",
    )
    source: str = Field(default="", description="Where the counts came from.")


class ModelStatus(Wire):
    observed_generation: int | None = None
    conditions: list[Condition] = Field(default_factory=list)
    revisions: list[RevisionStatus] = Field(default_factory=list)
    stable_revision: str | None = None
    canary_revision: str | None = None
    rollout: RolloutStatus | None = None
    slo: SLOStatus | None = None
    url: str | None = None
