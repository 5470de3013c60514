"""A revision's cumulative request counters: the one value the gateway keeps, the rollout
analysis reads and the metric sources (the gateway's own, the metrics API's history) pass on.

Cumulative, like Prometheus counters: a window is the difference of two readings, so nothing
here knows about windows or steps."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RevisionCounts:
    """Requests, errors (5xx and failed upstream calls) and a latency histogram with upper
    bounds in milliseconds (the last bucket, beyond the last bound, is +Inf); shadow
    comparisons with the stable revision, their summed disagreement (each 0 .. 1) and the
    measures they used; for generated text, histograms (same bounds) of the time to the first
    token (streamed answers) and of the time per output token."""

    requests: int
    errors: int
    bounds_ms: tuple[float, ...]
    buckets: tuple[int, ...]
    compared: int = 0
    disagreement: float = 0.0
    first_token_buckets: tuple[int, ...] = ()
    per_token_buckets: tuple[int, ...] = ()
    measures: frozenset[str] = frozenset()


@dataclass(frozen=True)
class RequestCounts:
    """A Model's requests as its clients saw them, cumulative: all of them, the failed (5xx, or
    no answer) and a latency histogram (upper bounds in milliseconds, the last bucket +Inf), as
    the gateway's ``modelplane_gateway_requests_total`` and request duration count them; what
    an SLO is measured on without Prometheus."""

    requests: int
    errors: int
    bounds_ms: tuple[float, ...]
    buckets: tuple[int, ...]
