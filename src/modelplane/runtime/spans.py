"""What the data plane writes on traces: a batched request's wait and model call as child spans
of the request's span, and what a generation or an embedding used, in the attributes of the
OpenTelemetry GenAI conventions.

The request's own span is the HTTP server's (``telemetry/tracing.py``); the adapters describe the
request on it (operation, model asked for, sampling), the data plane what answering it took.
"""

from __future__ import annotations

from opentelemetry import trace

from modelplane.runtime.batching import BatchTiming
from modelplane.runtime.generation import Completion
from modelplane.telemetry import names


def batch_spans(tracer: trace.Tracer | None, timing: BatchTiming) -> None:
    """The request's wait in the batch queue and its model call, as child spans."""
    if tracer is None or not timing.started_ns:
        return  # refused before it reached the batcher
    queued = tracer.start_span("queue", start_time=timing.queued_ns)
    queued.end(end_time=timing.started_ns)
    if timing.finished_ns:
        attributes = {names.ATTR_BATCH_SIZE: timing.batch_size}
        ran = tracer.start_span("inference", start_time=timing.started_ns, attributes=attributes)
        ran.end(end_time=timing.finished_ns)


def describe_completion(result: Completion) -> None:
    span = trace.get_current_span()
    if span.is_recording():
        span.set_attributes(
            {
                names.GEN_AI_USAGE_INPUT_TOKENS: result.prompt_tokens,
                names.GEN_AI_USAGE_OUTPUT_TOKENS: result.completion_tokens,
                names.GEN_AI_RESPONSE_FINISH_REASONS: [result.finish_reason],
            }
        )


def describe_embedding(tokens: int) -> None:
    span = trace.get_current_span()
    if span.is_recording():
        span.set_attribute(names.GEN_AI_USAGE_INPUT_TOKENS, tokens)
