"""The ``Model`` resource (``modelplane.io/v1alpha1``): what to serve, how to scale and roll it out.

The same type is the embedded control plane's stored object, the operator's custom resource and
the runtime's configuration. Defaults that depend on other fields (the protocols a task speaks)
are filled in at validation, so a stored object always reads complete.
"""

from __future__ import annotations

import re
from datetime import timedelta
from enum import StrEnum
from itertools import pairwise
from typing import Annotated, Literal, Self
from urllib.parse import urlsplit

from pydantic import ConfigDict, Field, JsonValue, field_validator, model_validator

from modelplane.api.meta import ObjectMeta, Wire
from modelplane.api.releases import parse_period
from modelplane.api.status import ModelStatus

GROUP = "modelplane.io"
VERSION = "v1alpha1"
API_VERSION: Literal["modelplane.io/v1alpha1"] = "modelplane.io/v1alpha1"
KIND: Literal["Model"] = "Model"


class ModelFormat(StrEnum):
    SKLEARN = "sklearn"
    ONNX = "onnx"
    HUGGINGFACE = "huggingface"
    PYTHON = "python"
    LLAMACPP = "llamacpp"
    VLLM = "vllm"


class Task(StrEnum):
    CLASSIFICATION = "classification"
    REGRESSION = "regression"
    EMBEDDING = "embedding"
    TEXT_GENERATION = "text-generation"
    CHAT = "chat"


class Protocol(StrEnum):
    V2 = "v2"
    OPENAI = "openai"


class RolloutStrategy(StrEnum):
    CANARY = "Canary"
    IMMEDIATE = "Immediate"


GENERATIVE_TASKS = frozenset({Task.TEXT_GENERATION, Task.CHAT})
OPENAI_TASKS = frozenset({Task.EMBEDDING, Task.TEXT_GENERATION, Task.CHAT})
DEFAULT_PROTOCOLS: dict[Task, list[Protocol]] = {
    Task.CLASSIFICATION: [Protocol.V2],
    Task.REGRESSION: [Protocol.V2],
    Task.EMBEDDING: [Protocol.OPENAI, Protocol.V2],
    Task.TEXT_GENERATION: [Protocol.OPENAI],
    Task.CHAT: [Protocol.OPENAI],
}
# Formats that only make sense for some tasks; formats not listed accept every task.
FORMAT_TASKS: dict[ModelFormat, frozenset[Task]] = {
    ModelFormat.SKLEARN: frozenset({Task.CLASSIFICATION, Task.REGRESSION, Task.EMBEDDING}),
    ModelFormat.ONNX: frozenset({Task.CLASSIFICATION, Task.REGRESSION, Task.EMBEDDING}),
    ModelFormat.LLAMACPP: frozenset(OPENAI_TASKS),
    ModelFormat.HUGGINGFACE: frozenset(OPENAI_TASKS),
    ModelFormat.VLLM: frozenset(OPENAI_TASKS),
}
# Each source kind, the form its URI takes (shown in errors) and the pattern it must match.
SOURCE_SCHEMES: dict[str, str] = {
    "file": "file:///abs/path or file://rel/path",
    "http": "http://host/path/file",
    "https": "https://host/path/file",
    "s3": "s3://bucket/key or s3://bucket/prefix/",
    "oci": "oci://registry/repository:tag or oci://registry/repository@sha256:<digest>",
    "models": "models:/name/version or models:/name@alias",
    "hf": "hf://org/name or hf://org/name@revision",
}
SOURCE_FORMS: dict[str, re.Pattern[str]] = {
    "file": re.compile(r"file://.+"),
    "http": re.compile(r"http://[^/]+/.*"),
    "https": re.compile(r"https://[^/]+/.*"),
    "s3": re.compile(r"s3://[^/]+(/.*)?"),
    "oci": re.compile(
        r"oci://[^/@:]+(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)+"
        r"(:[A-Za-z0-9_][A-Za-z0-9._-]{0,127}|@sha256:[0-9a-f]{64})?"
    ),
    "models": re.compile(r"models:/[^/@]+(/[0-9]+|@[A-Za-z0-9_-]+)"),
    "hf": re.compile(r"hf://[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?(@[^@\s]+)?"),
}
ENDPOINT_SCHEMES = frozenset({"s3", "models", "hf"})

Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
CpuQuantity = Annotated[str, Field(pattern=r"^[0-9]+(\.[0-9]+)?m?$")]
MemoryQuantity = Annotated[
    str, Field(pattern=r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$")
]


class SourceCredentials(Wire):
    """Where the fetch's secrets come from; they go to the step that fetches and nowhere else."""

    secret: Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", max_length=253)] = (
        Field(
            description="On a cluster, a Secret in the Model's namespace: its keys become the "
            "fetch step's environment (AWS_ACCESS_KEY_ID, MLFLOW_TRACKING_TOKEN, HF_TOKEN, "
            "REGISTRY_USERNAME, ...), or, for a kubernetes.io/dockerconfigjson Secret, its "
            "registry logins. Embedded, the file of that name under "
            "~/.config/modelplane/credentials (KEY=value lines, readable by its owner only)."
        )
    )


class Source(Wire):
    """Where the artifact (one file, or a directory) lives, and the digest it must have."""

    uri: Annotated[str, Field(min_length=1)] = Field(
        description="file:///path (a file or a directory), http(s)://host/file, "
        "s3://bucket/key (a file) or s3://bucket/prefix/ (a directory), "
        "oci://registry/repository:tag or @sha256:digest (an ORAS artifact or a model image), "
        "models:/name/version or models:/name@alias (the MLflow model registry), "
        "hf://org/name or hf://org/name@revision (a Hugging Face repository). Moving "
        "references (a tag, an alias, a branch) are resolved once, when a revision is made, "
        "and the revision keeps the immutable one."
    )
    sha256: Sha256 | None = Field(
        default=None,
        description="The digest the artifact must have: a file's sha256, or a directory's "
        "manifest digest (sha256 of its sorted '<sha256>  <size>  <path>' lines). Pinned "
        "artifacts are fetched once into a cache shared by every replica.",
    )
    endpoint: Annotated[str, Field(pattern=r"^https?://[^/?#@\s]+(/[^?#@\s]*)?$")] | None = Field(
        default=None,
        description="The server of the source, where the URI cannot name it: an "
        "S3-compatible store for s3:// (default: AWS_ENDPOINT_URL, else AWS S3), the MLflow "
        "tracking server for models:/ (default: MLFLOW_TRACKING_URI), the hub for hf:// "
        "(default: HF_ENDPOINT, else huggingface.co).",
    )
    credentials: SourceCredentials | None = Field(
        default=None,
        description="Secrets the fetch needs beyond the standard chains of the replica's "
        "environment. They are never written to status, events, logs, metrics or traces.",
    )

    @field_validator("uri")
    @classmethod
    def _known_scheme(cls, uri: str) -> str:
        parts = urlsplit(uri)
        if parts.scheme not in SOURCE_SCHEMES:
            allowed = ", ".join(SOURCE_SCHEMES.values())
            raise ValueError(
                f"scheme {parts.scheme or '(none)'!r} is not supported; use one of {allowed}"
            )
        if not SOURCE_FORMS[parts.scheme].fullmatch(uri):
            form = SOURCE_SCHEMES[parts.scheme]
            raise ValueError(f"{uri!r} is not a source of this form: {form}")
        return uri

    @model_validator(mode="after")
    def _endpoint_for_servers(self) -> Self:
        if self.endpoint is not None and urlsplit(self.uri).scheme not in ENDPOINT_SCHEMES:
            raise ValueError("endpoint is only for s3://, models:/ and hf:// sources")
        return self


class Resources(Wire):
    cpu: CpuQuantity = "1"
    memory: MemoryQuantity = "1Gi"
    accelerators: Annotated[int, Field(ge=0, le=16)] = 0


class Batching(Wire):
    """Adaptive batching: concurrent requests merge into one model call up to these bounds."""

    max_batch_size: Annotated[int, Field(ge=1, le=4096)] = 32
    max_delay_ms: Annotated[float, Field(ge=0, le=1000)] = 2


class ScalingMetric(StrEnum):
    """What the autoscaler counts per replica; ``target`` is read in its unit."""

    IN_FLIGHT = "inFlight"  # requests in flight, counted by the gateways (any model)
    WAITING = "waiting"  # requests waiting for a slot of the engine, reported by the replicas
    KV_CACHE = "kvCache"  # share of the KV cache in use (0 to 1), reported by the replicas
    TOKENS_PER_SECOND = "tokensPerSecond"  # tokens generated per second, reported by the replicas


# Metrics the replicas report (their engine's gauges), as opposed to the gateways' count.
REPORTED_METRICS = frozenset(set(ScalingMetric) - {ScalingMetric.IN_FLIGHT})
TARGET_MEANINGS = {
    ScalingMetric.IN_FLIGHT: "requests in flight per replica, a whole number from 1 to 10000",
    ScalingMetric.WAITING: "waiting requests per replica, more than 0",
    ScalingMetric.KV_CACHE: "the share of a replica's KV cache in use, more than 0 and at most 1",
    ScalingMetric.TOKENS_PER_SECOND: "generated tokens per second per replica, more than 0",
}
_TARGET_RULES: list[JsonValue] = [
    {
        "rule": "self.metric == 'inFlight' || has(self.target)",
        "message": "a metric other than inFlight needs target (its unit is the metric's)",
    },
    {
        "rule": "self.metric != 'kvCache' || !has(self.target) || self.target <= 1.0",
        "message": f"target for metric kvCache is {TARGET_MEANINGS[ScalingMetric.KV_CACHE]}",
    },
    {
        "rule": "self.metric != 'inFlight' || !has(self.target) || "
        "(self.target >= 1.0 && self.target <= 10000.0 && "
        "double(int(self.target)) == self.target)",
        "message": f"target for metric inFlight is {TARGET_MEANINGS[ScalingMetric.IN_FLIGHT]}",
    },
]


class Scaling(Wire):
    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": _TARGET_RULES})

    min_replicas: Annotated[int, Field(ge=0, le=1000)] = 1
    max_replicas: Annotated[int, Field(ge=1, le=1000)] = 4
    metric: ScalingMetric = Field(
        default=ScalingMetric.IN_FLIGHT,
        description="What replicas are counted by: inFlight (the gateways' count of requests), "
        "or what the replicas' engines report: waiting, kvCache, tokensPerSecond.",
    )
    target: Annotated[float, Field(gt=0, le=1_000_000)] | None = Field(
        default=None,
        description="Per replica, in the metric's unit; for inFlight, targetInFlight's value.",
    )
    target_in_flight: Annotated[int, Field(ge=1, le=10000)] = Field(
        default=4,
        description="In-flight requests per replica; with a reported metric, what is scaled on "
        "while the replicas' reports are missing.",
    )
    scale_to_zero_after_seconds: Annotated[int, Field(ge=0)] = 300

    @model_validator(mode="after")
    def _bounds(self) -> Self:
        if self.min_replicas > self.max_replicas:
            raise ValueError(
                f"minReplicas ({self.min_replicas}) must not exceed maxReplicas "
                f"({self.max_replicas})"
            )
        return self._target_in_range()

    def _target_in_range(self) -> Self:
        metric, target = self.metric, self.target
        meaning = TARGET_MEANINGS[metric]
        if target is None:
            if metric in REPORTED_METRICS:
                raise ValueError(f"metric {metric.value} needs target: {meaning}")
            return self
        if metric is ScalingMetric.KV_CACHE and target > 1:
            raise ValueError(f"target {target:g} is out of range for metric kvCache: {meaning}")
        if metric is ScalingMetric.IN_FLIGHT:
            if not target.is_integer() or target > 10000:
                raise ValueError(
                    f"target {target:g} is out of range for metric inFlight: {meaning}"
                )
            if "target_in_flight" in self.model_fields_set and self.target_in_flight != target:
                raise ValueError(
                    f"target ({target:g}) and targetInFlight ({self.target_in_flight}) disagree; "
                    "set one of them"
                )
            self.target_in_flight = int(target)  # one value, however it was written
        return self

    @property
    def aim(self) -> float:
        """The metric's target per replica."""
        if self.metric is ScalingMetric.IN_FLIGHT or self.target is None:
            return float(self.target_in_flight)
        return self.target


class RolloutStep(Wire):
    weight: Annotated[int, Field(ge=1, le=100)]
    pause_seconds: Annotated[int, Field(ge=0)] = 30


class Analysis(Wire):
    """Thresholds a canary must meet at each step before it takes more traffic."""

    max_error_rate: Annotated[float, Field(ge=0, le=1)] = 0.01
    max_latency_p99_ms: Annotated[float, Field(gt=0)] = Field(
        default=250,
        description="p99 of whole answers; generative models (text-generation, chat) are judged "
        "on maxTimeToFirstTokenP99Ms and maxTimePerOutputTokenP99Ms instead.",
    )
    max_time_to_first_token_p99_ms: Annotated[float, Field(gt=0)] = Field(
        default=1000,
        description="p99 of the time to the first token of streamed answers (generative models).",
    )
    max_time_per_output_token_p99_ms: Annotated[float, Field(gt=0)] = Field(
        default=250,
        description="p99 of the time per output token after the first (streamed answers), or "
        "of the whole answer's time per output token (non-streamed; generative models).",
    )
    max_disagreement: Annotated[float, Field(ge=0, le=1)] = 0.05
    min_requests: Annotated[int, Field(ge=1)] = 50
    shadow_percent: Annotated[float, Field(ge=0, le=100)] = Field(
        default=10,
        description="Share of the stable revision's requests mirrored to the canary to measure "
        "prediction disagreement; clients only ever see the stable answer.",
    )


class EvaluationMetric(StrEnum):
    ACCURACY = "accuracy"  # classification: share of labels right
    F1 = "f1"  # classification: macro-averaged F1 over the labels seen
    MEAN_ABSOLUTE_ERROR = "meanAbsoluteError"  # regression: lower is better
    COSINE_SIMILARITY = "cosineSimilarity"  # embeddings: mean cosine to the expected vectors
    EXACT_MATCH = "exactMatch"  # generation: share of answers equal to the expected text
    SCORER = "scorer"  # the mean of a scorer's judgements, each in [0, 1] (generation mostly)


LOWER_IS_BETTER = frozenset({EvaluationMetric.MEAN_ABSOLUTE_ERROR})
SCORER_GROUP = "modelplane.scorers"  # the entry point group a package offers scorers in
_IDENTIFIER = r"[A-Za-z_][A-Za-z0-9_]*"
_SCORER_FUNCTION = re.compile(rf"{_IDENTIFIER}(\.{_IDENTIFIER})*:{_IDENTIFIER}(\.{_IDENTIFIER})*")
_SCORER_ENTRY_POINT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


class Evaluation(Wire):
    """A gate before any traffic: a dataset of inputs with expected outputs is replayed against
    the canary once it is ready, and the rollout goes on only if the metric meets the threshold
    (rolled back with the numbers on status otherwise)."""

    dataset: Annotated[str, Field(min_length=1)] = Field(
        description='JSON lines {"inputs": ..., "expected": ...}: inputs a v2 request\'s '
        "tensors, or an OpenAI API body (messages, prompt or input); from any source a Model's "
        "artifact may come from."
    )
    metric: EvaluationMetric
    scorer: str | None = Field(
        default=None,
        description=f"With metric scorer (and only then): the function judging each answer, "
        f"an entry point's name in group {SCORER_GROUP} or package.module:function. It is "
        "imported where the gate runs (the platform, the operator's image, the CI job), never "
        "from the Model's sources; it is called with the answer, the expected value and, if it "
        "takes a third argument, the example's inputs, and returns a number in [0, 1].",
    )
    threshold: float = Field(
        description="The least the metric may be (the most, for meanAbsoluteError); with "
        "relativeToStable, how much worse than the stable revision's it may be."
    )
    relative_to_stable: bool = False
    max_examples: Annotated[int, Field(ge=1, le=100_000)] = Field(
        default=1000, description="Lines of the dataset replayed, from its start."
    )

    @field_validator("scorer")
    @classmethod
    def _scorer_name(cls, scorer: str | None) -> str | None:
        if scorer is None:
            return None
        pattern = _SCORER_FUNCTION if ":" in scorer else _SCORER_ENTRY_POINT
        if not pattern.fullmatch(scorer):
            raise ValueError(
                f"{scorer!r} is neither package.module:function (e.g. "
                f"modelplane.scoring:contains) nor the name of an entry point in group "
                f"{SCORER_GROUP} (letters, digits, '.', '_', '-')"
            )
        return scorer

    @model_validator(mode="after")
    def _scorer_with_its_metric(self) -> Self:
        if self.metric is EvaluationMetric.SCORER and self.scorer is None:
            raise ValueError("metric scorer needs scorer: the function judging each answer")
        if self.metric is not EvaluationMetric.SCORER and self.scorer is not None:
            raise ValueError(
                f"scorer {self.scorer!r} is given with metric {self.metric.value}: "
                "set metric: scorer to use it, or leave scorer out"
            )
        return self

    @property
    def judged_by(self) -> str:
        """What the verdict names: the metric, or the scorer."""
        return f"scorer {self.scorer}" if self.scorer else self.metric.value


def _default_steps() -> list[RolloutStep]:
    return [RolloutStep(weight=10, pause_seconds=30), RolloutStep(weight=50, pause_seconds=30)]


class Rollout(Wire):
    strategy: RolloutStrategy = RolloutStrategy.CANARY
    steps: list[RolloutStep] = Field(default_factory=_default_steps)
    analysis: Analysis = Field(default_factory=Analysis)
    evaluation: Evaluation | None = None

    @field_validator("steps")
    @classmethod
    def _increasing(cls, steps: list[RolloutStep]) -> list[RolloutStep]:
        weights = [s.weight for s in steps]
        if any(b <= a for a, b in pairwise(weights)):
            raise ValueError(f"step weights must increase strictly, got {weights}")
        return steps


class RuntimeOptions(Wire):
    """How the runtime serves this model; every field here but maxLoadedAdapters is part of the
    revision."""

    allow_pickle: bool = Field(
        default=False,
        description="Load pickle-based artifacts (sklearn/joblib). Pickle runs code on load, so "
        "this also requires source.sha256.",
    )
    python_class: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")] = "Model"
    max_request_bytes: Annotated[int, Field(ge=1024)] = 64 * 1024 * 1024
    parameters: dict[str, str] = Field(default_factory=dict)
    max_loaded_adapters: Annotated[int, Field(ge=1, le=1024)] = Field(
        default=4,
        description="The most LoRA adapters (spec.adapters) a replica keeps loaded: each is "
        "loaded on its first request and the least recently used one is dropped past this. "
        "Like the adapters, it reaches running replicas and makes no revision.",
    )


class Generation(Wire):
    """Limits of text generation (chat and text-generation tasks), checked before any work."""

    max_tokens: Annotated[int, Field(ge=1, le=1_000_000)] = Field(
        default=1024,
        description="The most tokens one request may generate; a request asking for more is "
        "refused with 400, one asking for none gets up to this many.",
    )
    context_length: Annotated[int, Field(ge=16, le=10_000_000)] | None = Field(
        default=None,
        description="Tokens of context (prompt plus output) per request; default: the model's own.",
    )
    timeout_seconds: Annotated[float, Field(gt=0, le=86400)] = Field(
        default=300, description="A generation still running after this long is stopped."
    )


# Formats whose engine can run as its own OpenAI-compatible server (vllm can only).
EXTERNAL_ENGINE_FORMATS = frozenset({ModelFormat.LLAMACPP, ModelFormat.VLLM})


class Engine(Wire):
    """An inference engine's own OpenAI-compatible server, launched for each replica and fronted
    by the runtime (health, limits, metrics, draining)."""

    external: bool = Field(
        default=False,
        description="Run the engine's own server (llama.cpp's for llamacpp) rather than the "
        "engine inside the runtime; vllm always runs so.",
    )
    args: list[str] = Field(
        default_factory=list, description="More command-line arguments for the engine's server."
    )
    startup_timeout_seconds: Annotated[float, Field(gt=0, le=7200)] = Field(
        default=600, description="How long the engine may take to load before the replica fails."
    )


OTEL_VARIABLE = re.compile(r"OTEL_[A-Z0-9_]+")
ONLY_OTEL = "only OTEL_* variables (upper case) may be set here"


class Telemetry(Wire):
    """OpenTelemetry settings of this model's replicas."""

    env: dict[str, str] = Field(
        default_factory=dict,
        max_length=64,
        # The API server refuses what the validator below does, before the operator sees it.
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": f"self.all(k, k.matches('^{OTEL_VARIABLE.pattern}$'))",
                    "message": ONLY_OTEL,
                }
            ]
        },
        description="OTEL_* environment variables for the replicas (sampler, exporter, resource "
        "attributes...), over the platform's own in embedded mode and the operator's "
        "--model-env on a cluster.",
    )

    @field_validator("env")
    @classmethod
    def _only_otel(cls, env: dict[str, str]) -> dict[str, str]:
        wrong = sorted(name for name in env if not OTEL_VARIABLE.fullmatch(name))
        if wrong:
            raise ValueError(f"{ONLY_OTEL}, not {', '.join(wrong)}")
        return env


ADAPTER_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$"
# Engines that apply LoRA adapters inside the runtime (an engine's own server does not).
ADAPTER_FORMATS = frozenset({ModelFormat.LLAMACPP})


class Adapter(Wire):
    """A LoRA adapter served on the Model's own replicas: clients name it as the OpenAI API's
    ``model``. Adapters are no part of the revision: editing the list reaches running replicas
    and starts nothing."""

    name: Annotated[str, Field(pattern=ADAPTER_NAME)] = Field(
        description="What clients write as the model (the OpenAI API's model field); unique "
        "among the Model's adapters and other than its own name."
    )
    source: Source = Field(
        description="The adapter's file (GGUF LoRA for llamacpp), from any source a Model's "
        "artifact may come from; fetched on its first request into the replicas' cache, with "
        "the replicas' own environment (source.credentials is not taken here)."
    )

    @field_validator("source")
    @classmethod
    def _no_credentials(cls, source: Source) -> Source:
        if source.credentials is not None:
            raise ValueError(
                "an adapter's source takes no credentials: replicas fetch it with their own "
                "environment (put the adapter where they may read it)"
            )
        return source


# Shorter, and the burn-rate alerts' windows (scaled from the SLO window) shrink below what
# scraping can measure; longer, and the budget outlives what metric stores usually keep.
SLO_WINDOW_MIN = timedelta(hours=1)
SLO_WINDOW_MAX = timedelta(days=90)


class SLO(Wire):
    """A service level objective over a rolling window: what share of requests must succeed
    (and, optionally, be fast), whose shortfall is the error budget; burn-rate alerts and the
    release freeze are measured against it. Not part of the revision."""

    availability: Annotated[float, Field(gt=0, lt=1)] = Field(
        default=0.999,
        description="The share of requests that must succeed (any answer but a 5xx or none); "
        "the error budget is 1 - availability.",
    )
    latency_p99_ms: Annotated[float, Field(gt=0, le=3_600_000)] | None = Field(
        default=None,
        description="A latency objective: 99% of requests answered within this many "
        "milliseconds (at the gateway, holds and retries included); its budget is the other 1%.",
    )
    window: Annotated[str, Field(pattern=r"^[1-9][0-9]*[mhdw]$")] = Field(
        default="30d",
        description="The rolling window the objective and its budget span: a whole number "
        "with m, h, d or w (7d, 28d, 30d), from 1h to 90d. Burn-rate alert windows scale with "
        "it (1h and 5m for 30d).",
    )
    freeze: bool = Field(
        default=False,
        description="Hold spec changes that would make a new revision while the error budget "
        "is spent (a rollback to an earlier revision's spec still goes through; the "
        "modelplane.io/freeze-override annotation lets a change through and is recorded).",
    )

    @field_validator("window")
    @classmethod
    def _a_period(cls, window: str) -> str:
        period = parse_period(window)
        if not SLO_WINDOW_MIN <= period <= SLO_WINDOW_MAX:
            raise ValueError(f"window {window!r} must be from 1h to 90d")
        return window

    @property
    def period(self) -> timedelta:
        return parse_period(self.window)


class ModelSpec(Wire):
    source: Source
    format: ModelFormat
    task: Task
    protocols: list[Protocol] | None = Field(
        default=None, description="Defaults to the protocols the task speaks."
    )
    resources: Resources = Field(default_factory=Resources)
    batching: Batching = Field(default_factory=Batching)
    scaling: Scaling = Field(default_factory=Scaling)
    rollout: Rollout = Field(default_factory=Rollout)
    runtime: RuntimeOptions = Field(default_factory=RuntimeOptions)
    generation: Generation = Field(default_factory=Generation)
    engine: Engine = Field(default_factory=Engine)
    telemetry: Telemetry = Field(default_factory=Telemetry)
    slo: SLO | None = Field(
        default=None,
        description="A service level objective with its error budget; edits never make a revision.",
    )
    adapters: list[Adapter] = Field(
        default_factory=list,
        max_length=1024,
        description="LoRA adapters of this model (llamacpp chat and text-generation models), "
        "served by its replicas and loaded on first use; edits make no revision.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        allowed_tasks = FORMAT_TASKS.get(self.format)
        if allowed_tasks is not None and self.task not in allowed_tasks:
            names = ", ".join(sorted(allowed_tasks))
            raise ValueError(
                f"format {self.format.value!r} cannot serve task {self.task.value!r}; "
                f"it serves: {names}"
            )
        if self.protocols is None:
            self.protocols = list(DEFAULT_PROTOCOLS[self.task])
        if Protocol.OPENAI in self.protocols and self.task not in OPENAI_TASKS:
            raise ValueError(
                f"protocol 'openai' needs a task of embedding, text-generation or chat, "
                f"not {self.task.value!r}; use protocols: [v2]"
            )
        if self.engine.external and self.format not in EXTERNAL_ENGINE_FORMATS:
            names = ", ".join(sorted(EXTERNAL_ENGINE_FORMATS))
            raise ValueError(
                f"engine.external needs a format with a server of its own ({names}), "
                f"not {self.format.value!r}"
            )
        self._scaling_reported()
        self._check_adapters()
        if self.runtime.allow_pickle and self.source.sha256 is None:
            raise ValueError(
                "runtime.allowPickle needs source.sha256: pickle runs code on load, "
                "so only a pinned artifact may be trusted"
            )
        return self

    def _scaling_reported(self) -> None:
        """A reported metric needs an engine that reports it."""
        metric = self.scaling.metric
        if metric in REPORTED_METRICS and self.task not in GENERATIVE_TASKS:
            raise ValueError(
                f"scaling.metric {metric.value} is reported by the engines of generative models "
                f"(task chat or text-generation), not task {self.task.value!r}; use inFlight"
            )
        if metric is ScalingMetric.KV_CACHE and self.format is ModelFormat.HUGGINGFACE:
            raise ValueError(
                "scaling.metric kvCache: format 'huggingface' runs one sequence at a time and "
                "reports no KV-cache use; use waiting or inFlight"
            )

    def _check_adapters(self) -> None:
        if not self.adapters:
            return
        if self.format not in ADAPTER_FORMATS or self.engine.external:
            served = "engine.external" if self.engine.external else f"format {self.format.value!r}"
            raise ValueError(
                f"adapters are served by format llamacpp inside the runtime, not by {served}"
            )
        if self.task not in GENERATIVE_TASKS:
            raise ValueError(
                f"adapters need a chat or text-generation task, not {self.task.value!r}"
            )
        names = [a.name for a in self.adapters]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"adapter names must be unique; repeated: {', '.join(repeated)}")


class Model(Wire):
    """A model to serve: the ``Model`` resource of ``modelplane.io/v1alpha1``."""

    api_version: Literal["modelplane.io/v1alpha1"] = API_VERSION
    kind: Literal["Model"] = KIND
    metadata: ObjectMeta
    spec: ModelSpec
    status: ModelStatus = Field(default_factory=ModelStatus)

    @model_validator(mode="after")
    def _adapters_not_named_as_the_model(self) -> Self:
        if any(a.name == self.metadata.name for a in self.spec.adapters):
            raise ValueError(
                f"spec.adapters: an adapter may not be named {self.metadata.name!r}, the "
                f"Model's own name (clients could not tell them apart)"
            )
        return self

    @property
    def key(self) -> str:
        """``namespace/name``: how the gateway and the CLI address a model."""
        return f"{self.metadata.namespace}/{self.metadata.name}"

    @property
    def speaks_openai(self) -> bool:
        return Protocol.OPENAI in (self.spec.protocols or ())

    def gateway_path(self, explicit_namespace: bool = False) -> str:
        """Where clients reach the model on a gateway: its v2 path (``namespace/name``, or the
        bare name in the default namespace), or for a model that speaks only the OpenAI API
        that API's base (the model is named in the request body)."""
        meta = self.metadata
        bare = meta.namespace == "default" and not explicit_namespace
        name = meta.name if bare else self.key
        if Protocol.V2 not in (self.spec.protocols or ()):
            return "/v1"
        return f"/v2/models/{name}"
