"""Prometheus metrics of the runtime, built on a registry the composition root passes in."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from modelplane.telemetry import names, otlp_metrics

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class RuntimeMetrics:
    """The runtime's metrics for one model; a fresh registry per instance keeps tests apart."""

    def __init__(self, model: str, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        otlp_metrics.mirror(self.registry)  # pushed over OTLP too, when asked
        labels = {names.LABEL_MODEL: model}
        r = self.registry
        self._requests = Counter(
            names.RUNTIME_REQUESTS,
            "Inference requests by outcome.",
            [names.LABEL_MODEL, names.LABEL_OUTCOME],
            registry=r,
        )
        self._model = model
        self._by_outcome: dict[str, Counter] = {}
        self.request_duration = Histogram(
            names.RUNTIME_REQUEST_DURATION,
            "Time from receiving an inference request to its response.",
            [names.LABEL_MODEL],
            buckets=names.LATENCY_BUCKETS,
            registry=r,
        ).labels(**labels)
        self.queue_duration = Histogram(
            names.RUNTIME_QUEUE_DURATION,
            "Time a request waited for its batch to start.",
            [names.LABEL_MODEL],
            buckets=names.LATENCY_BUCKETS,
            registry=r,
        ).labels(**labels)
        self.inference_duration = Histogram(
            names.RUNTIME_INFERENCE_DURATION,
            "Time of one model call (one batch).",
            [names.LABEL_MODEL],
            buckets=names.LATENCY_BUCKETS,
            registry=r,
        ).labels(**labels)
        self.batch_size = Histogram(
            names.RUNTIME_BATCH_SIZE,
            "Requests merged into one model call.",
            [names.LABEL_MODEL],
            buckets=names.BATCH_BUCKETS,
            registry=r,
        ).labels(**labels)
        self.in_flight = Gauge(
            names.RUNTIME_IN_FLIGHT,
            "Inference requests being served now.",
            [names.LABEL_MODEL],
            registry=r,
        ).labels(**labels)
        self.ready = Gauge(
            names.RUNTIME_MODEL_READY,
            "1 when the model is loaded and serving.",
            [names.LABEL_MODEL],
            registry=r,
        ).labels(**labels)

    def count(self, outcome: str) -> None:
        child = self._by_outcome.get(outcome)
        if child is None:
            child = self._by_outcome[outcome] = self._requests.labels(self._model, outcome)
        child.inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class GenerationMetrics:
    """A language model's metrics, in the runtime's registry: tokens, time to first token, time
    per output token, and requests running and waiting (also under vLLM's names)."""

    def __init__(self, model: str, registry: CollectorRegistry) -> None:
        def counter(name: str, doc: str) -> Counter:
            return Counter(name, doc, [names.LABEL_MODEL], registry=registry).labels(model)

        def histogram(name: str, doc: str, buckets: tuple[float, ...]) -> Histogram:
            metric = Histogram(name, doc, [names.LABEL_MODEL], buckets=buckets, registry=registry)
            return metric.labels(model)

        def gauges(name: str, alias: str, doc: str) -> _Gauges:
            return _Gauges(
                Gauge(name, doc, [names.LABEL_MODEL], registry=registry).labels(model),
                Gauge(alias, doc, ["model_name"], registry=registry).labels(model),
            )

        self.prompt_tokens = counter(names.RUNTIME_PROMPT_TOKENS, "Prompt tokens read.")
        self.generation_tokens = counter(names.RUNTIME_GENERATION_TOKENS, "Tokens generated.")
        self.time_to_first_token = histogram(
            names.RUNTIME_TIME_TO_FIRST_TOKEN,
            "Time from a request's arrival at the model to its first generated token.",
            names.TIME_TO_FIRST_TOKEN_BUCKETS,
        )
        self.time_per_output_token = histogram(
            names.RUNTIME_TIME_PER_OUTPUT_TOKEN,
            "Mean time between generated tokens after the first, per request.",
            names.TIME_PER_OUTPUT_TOKEN_BUCKETS,
        )
        self.duration = histogram(
            names.RUNTIME_GENERATION_DURATION,
            "Time from a generation request's arrival at the model to its last token.",
            names.GENERATION_DURATION_BUCKETS,
        )
        self.queue_seconds = histogram(
            names.RUNTIME_GENERATION_QUEUE,
            "Time a generation request waited for the model.",
            names.LATENCY_BUCKETS,
        )
        self.running = gauges(
            names.RUNTIME_REQUESTS_RUNNING,
            names.VLLM_REQUESTS_RUNNING,
            "Generation requests the model is working on.",
        )
        self.waiting = gauges(
            names.RUNTIME_REQUESTS_WAITING,
            names.VLLM_REQUESTS_WAITING,
            "Generation requests waiting for the model.",
        )
        self.kv_cache_usage = gauges(
            names.RUNTIME_KV_CACHE_USAGE,
            names.VLLM_KV_CACHE_USAGE,
            "Share of the model's KV cache in use (0 to 1).",
        )


class _Gauges:
    """One gauge under two names, moved together."""

    def __init__(self, *gauges: Gauge) -> None:
        self._gauges = gauges

    def inc(self) -> None:
        for gauge in self._gauges:
            gauge.inc()

    def dec(self) -> None:
        for gauge in self._gauges:
            gauge.dec()

    def set(self, value: float) -> None:
        for gauge in self._gauges:
            gauge.set(value)
