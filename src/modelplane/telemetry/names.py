"""The names modelplane exports: Prometheus metrics and OpenTelemetry span attributes.

Prometheus practice: ``modelplane_`` prefix, base units (seconds), ``_total`` for counters, and
labels of low cardinality only (model and outcome, never request ids).
"""

RUNTIME_REQUESTS = "modelplane_runtime_requests"  # prometheus_client appends _total
RUNTIME_REQUEST_DURATION = "modelplane_runtime_request_duration_seconds"
RUNTIME_QUEUE_DURATION = "modelplane_runtime_queue_duration_seconds"
RUNTIME_INFERENCE_DURATION = "modelplane_runtime_inference_duration_seconds"
RUNTIME_BATCH_SIZE = "modelplane_runtime_batch_size"
RUNTIME_IN_FLIGHT = "modelplane_runtime_in_flight_requests"
RUNTIME_MODEL_READY = "modelplane_runtime_model_ready"

# Generation (LLM runtimes). Buckets are the OpenTelemetry GenAI conventions' recommended ones.
RUNTIME_PROMPT_TOKENS = "modelplane_runtime_prompt_tokens"
RUNTIME_GENERATION_TOKENS = "modelplane_runtime_generation_tokens"
RUNTIME_TIME_TO_FIRST_TOKEN = "modelplane_runtime_time_to_first_token_seconds"  # noqa: S105
RUNTIME_TIME_PER_OUTPUT_TOKEN = "modelplane_runtime_time_per_output_token_seconds"  # noqa: S105
RUNTIME_GENERATION_QUEUE = "modelplane_runtime_generation_queue_seconds"
# Artifact delivery, by source kind (the URI scheme: s3, oci, hf, models, http, file).
ARTIFACT_FETCHED_BYTES = "modelplane_artifact_fetched_bytes"
ARTIFACT_CACHE_HITS = "modelplane_artifact_cache_hits"
ARTIFACT_CACHE_MISSES = "modelplane_artifact_cache_misses"
ARTIFACT_FETCH_DURATION = "modelplane_artifact_fetch_duration_seconds"
ARTIFACT_FETCH_ERRORS = "modelplane_artifact_fetch_errors"
LABEL_SOURCE_KIND = "source_kind"
LABEL_REASON = "reason"
FETCH_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)
RUNTIME_GENERATION_DURATION = "modelplane_runtime_generation_duration_seconds"
RUNTIME_REQUESTS_RUNNING = "modelplane_runtime_generation_requests_running"
RUNTIME_REQUESTS_WAITING = "modelplane_runtime_generation_requests_waiting"
RUNTIME_KV_CACHE_USAGE = "modelplane_runtime_kv_cache_usage_ratio"
# The same gauges under the names the Gateway API Inference Extension's endpoint picker scrapes
# from vLLM: a deliberate compatibility alias, so that picker can balance modelplane runtimes.
VLLM_REQUESTS_RUNNING = "vllm:num_requests_running"
VLLM_REQUESTS_WAITING = "vllm:num_requests_waiting"
VLLM_KV_CACHE_USAGE = "vllm:kv_cache_usage_perc"
TIME_TO_FIRST_TOKEN_BUCKETS = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
)  # fmt: skip
TIME_PER_OUTPUT_TOKEN_BUCKETS = (
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5,
)  # fmt: skip
GENERATION_DURATION_BUCKETS = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
)  # fmt: skip
# Over OTLP the same histograms are also sent under the GenAI conventions' metric names, their
# "model" label as gen_ai.request.model.
GENAI_METRIC_ALIASES = {
    RUNTIME_GENERATION_DURATION: "gen_ai.server.request.duration",
    RUNTIME_TIME_TO_FIRST_TOKEN: "gen_ai.server.time_to_first_token",
    RUNTIME_TIME_PER_OUTPUT_TOKEN: "gen_ai.server.time_per_output_token",
}

LABEL_MODEL = "model"
LABEL_OUTCOME = "outcome"

# OpenTelemetry attributes of the HTTP semantic conventions (stable).
HTTP_REQUEST_METHOD = "http.request.method"
HTTP_ROUTE = "http.route"
HTTP_RESPONSE_STATUS_CODE = "http.response.status_code"
URL_PATH = "url.path"
ERROR_TYPE = "error.type"
SERVER_ADDRESS = "server.address"
SERVER_PORT = "server.port"

# OpenTelemetry attributes of the GenAI semantic conventions (development status).
GEN_AI_OPERATION_NAME = "gen_ai.operation.name"  # chat, text_completion, embeddings
GEN_AI_PROVIDER_NAME = "gen_ai.provider.name"
GEN_AI_REQUEST_MODEL = "gen_ai.request.model"
GEN_AI_REQUEST_MAX_TOKENS = "gen_ai.request.max_tokens"
GEN_AI_REQUEST_TEMPERATURE = "gen_ai.request.temperature"
GEN_AI_REQUEST_TOP_P = "gen_ai.request.top_p"
GEN_AI_REQUEST_SEED = "gen_ai.request.seed"
GEN_AI_RESPONSE_ID = "gen_ai.response.id"
GEN_AI_RESPONSE_MODEL = "gen_ai.response.model"
GEN_AI_RESPONSE_FINISH_REASONS = "gen_ai.response.finish_reasons"
GEN_AI_USAGE_INPUT_TOKENS = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"

# OpenTelemetry attributes beyond the semantic conventions' own.
ATTR_MODEL = "modelplane.model.name"
ATTR_MODEL_VERSION = "modelplane.model.version"
ATTR_OUTCOME = "modelplane.outcome"
ATTR_REVISION = "modelplane.revision"  # the revision the gateway routed to
ATTR_REPLICA = "modelplane.replica"  # the replica (pod) an attempt went to
ATTR_ATTEMPT = "modelplane.attempt"  # 1 for the first try, 2 for the first retry, ...
ATTR_RETRIES = "modelplane.retries"
ATTR_HELD_SECONDS = "modelplane.held_seconds"  # waited for a cold start; absent if not held
ATTR_SHADOW = "modelplane.shadow"  # a copy mirrored to the canary, off the client's path
ATTR_BATCH_SIZE = "modelplane.batch.size"  # requests merged into the model call

# Latency buckets in seconds: sub-millisecond resolution for small models, up to LLM scale.
LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)

GATEWAY_REQUESTS = "modelplane_gateway_requests"
GATEWAY_REQUEST_DURATION = "modelplane_gateway_request_duration_seconds"
GATEWAY_IN_FLIGHT = "modelplane_gateway_in_flight_requests"
GATEWAY_HELD = "modelplane_gateway_held_requests"
GATEWAY_RETRIES = "modelplane_gateway_retries"
GATEWAY_REFUSED = "modelplane_gateway_refused_requests"
# Fair flow control: requests waiting for a saturated model, how long they waited, those shed.
GATEWAY_FLOW_WAITING = "modelplane_gateway_flow_waiting_requests"
GATEWAY_FLOW_WAIT = "modelplane_gateway_flow_wait_seconds"
GATEWAY_FLOW_SHED = "modelplane_gateway_flow_shed_requests"
LABEL_PRIORITY = "priority"
LABEL_NAMESPACE = "model_namespace"  # not "namespace": the scrape target has that one
LABEL_REASON = "reason"
LABEL_REVISION = "revision"

# What the rollout analysis reads, per revision: a request a canary failed and the stable revision
# then answered counts as an error of the canary (and a success of the stable revision).
ANALYSIS_REQUESTS = "modelplane_gateway_analysis_requests"
ANALYSIS_REQUEST_DURATION = "modelplane_gateway_analysis_request_duration_seconds"
SHADOW_DISAGREEMENT = "modelplane_gateway_shadow_disagreement"
LABEL_MEASURE = "measure"  # how a shadow answer was compared: cosine distance, exact match, ...
# Generated text, per revision: to the first token of a stream, and per output token after it.
ANALYSIS_FIRST_TOKEN = "modelplane_gateway_analysis_time_to_first_token_seconds"  # noqa: S105
ANALYSIS_PER_TOKEN = "modelplane_gateway_analysis_time_per_output_token_seconds"  # noqa: S105
# Buckets of the analysis histogram (seconds): fine enough for a p99 verdict at every scale.
ANALYSIS_LATENCY_BUCKETS = (
    0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075,
    0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0,
)  # fmt: skip

# Each Model's availability objective (spec.slo), which the burn-rate alerting rules join on.
SLO_OBJECTIVE = "modelplane_slo_objective_ratio"
# Each Model's latency objective: the share within latencyP99Ms, labelled with the gateway
# duration histogram's bucket (``le``) the rules read it from.
SLO_LATENCY_OBJECTIVE = "modelplane_slo_latency_objective_ratio"

OPERATOR_WRITES = "modelplane_operator_api_writes"
OPERATOR_RECONCILES = "modelplane_operator_reconciles"
OPERATOR_RECONCILE_DURATION = "modelplane_operator_reconcile_duration_seconds"
OPERATOR_QUEUE_DEPTH = "modelplane_operator_queue_depth"
LABEL_VERB = "verb"
LABEL_KIND = "kind"
